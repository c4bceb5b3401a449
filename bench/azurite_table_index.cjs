// Preloaded into Azurite (`node --require`) by `bench_rescan.py --table-index`: makes its table
// queries cost what Azure Table Storage's do, O(rows that match) instead of O(rows in the table).
//
// Azurite 3.35-3.37 answers every Query Entities (`LokiTableMetadataStore.queryTableEntities`)
// by running the interpreted filter on every entity of the table and sorting all matches, once
// per page. A rescan's key-range reads (`PartitionKey eq @pk and RowKey ge @low and RowKey le
// @high`, one or more per chunk) therefore each scan the whole images table, and a week at
// 100,000 images is quadratic on Azurite while Azure serves such a range from its index.
//
// This replaces that one method with the same filter, continuation and order, and keeps each
// entity collection's rows in a map (PartitionKey -> RowKey -> entity) in place of LokiJS's two
// sorted key indexes:
// - when the filter pins the partition (`PartitionKey eq '<text>'` as a term of a top-level
//   `and`, which is how every partition query of acr-scan reads), the candidates are that
//   partition's rows in the map, and the filter runs on them only;
// - the page (the first `top` + 1 matches in PartitionKey, RowKey order) is selected with a
//   bounded heap instead of sorting every match;
// - point operations (`findOne({PartitionKey, RowKey})`, before every read and write of one
//   entity) look their entity up in the map instead of scanning its partition;
// - a new row is added to the map instead of being spliced into two sorted arrays of every row
//   (LokiJS moved the whole of both for each history row, whose keys sort near the front).
// Any other query (no filter, a partition named under `or` or `not`: the paged listings of a
// whole table) walks the table in key order from its continuation, through a sorted view of the
// table's positions kept until a row is added or removed, and stops at the page's last match:
// Azurite evaluated the filter on every entity for every page, so listing a table of n rows in
// pages of 1,000 cost n * n / 1,000 evaluations (20 million for the two listings of a
// 100,000-image week), where Azure reads a page from its continuation.
// Merges (`Collection.update`) in LokiJS's other collections (tables, service properties, blob
// metadata) looked for the entity's slot in each key index with a linear scan and moved it out
// and back in (O(rows) per merge); the slot is now found by a binary search, and left where it
// is when it is still in order.
// What comes back is the same entities in the same order with the same continuation:
// tests/bench/test_azurite_table_index.py compares both over the same data.

"use strict";

const fs = require("fs");
const path = require("path");

// The Azurite script being started (azurite, azurite-table or azurite-blob) names its dist/src.
const script = process.argv[1] ? fs.realpathSync(process.argv[1]) : "";
const source = path.dirname(script);
const persistence = path.join(source, "table", "persistence");

if (fs.existsSync(path.join(persistence, "LokiTableMetadataStore.js"))) {
  const store = require(path.join(persistence, "LokiTableMetadataStore.js")).default;
  const generator = require(path.join(persistence, "LokiTableStoreQueryGenerator.js")).default;
  const interpreter = path.join(persistence, "QueryInterpreter");
  const parseQuery = require(path.join(interpreter, "QueryParser.js")).default;
  const AndNode = require(path.join(interpreter, "QueryNodes", "AndNode.js")).default;
  const EqualsNode = require(path.join(interpreter, "QueryNodes", "EqualsNode.js")).default;
  const IdentifierNode = require(path.join(interpreter, "QueryNodes", "IdentifierNode.js")).default;
  const ConstantNode = require(path.join(interpreter, "QueryNodes", "ConstantNode.js")).default;

  // The partition a filter pins, or undefined: a `PartitionKey eq '<text>'` reached from the
  // root through `and` nodes only.
  function pinnedPartition(filter) {
    if (typeof filter !== "string" || filter === "") {
      return undefined;
    }
    let tree;
    try {
      tree = parseQuery(filter);
    } catch (error) {
      return undefined; // the original method reports the bad filter
    }
    const stack = [tree];
    while (stack.length > 0) {
      const node = stack.pop();
      if (node instanceof AndNode) {
        stack.push(node.left, node.right);
      } else if (node instanceof EqualsNode) {
        const [name, value] = node.left instanceof IdentifierNode
          ? [node.left, node.right] : [node.right, node.left];
        if (name instanceof IdentifierNode && name.identifier === "PartitionKey"
            && value instanceof ConstantNode && typeof value.value === "string") {
          return value.value;
        }
      }
    }
    return undefined;
  }

  // Azurite's order: PartitionKey, then RowKey.
  function compare(first, second) {
    if (first.PartitionKey > second.PartitionKey) {
      return 1;
    }
    if (first.PartitionKey === second.PartitionKey) {
      if (first.RowKey > second.RowKey) {
        return 1;
      }
      return first.RowKey === second.RowKey ? 0 : -1;
    }
    return -1;
  }

  // The `count` smallest of `items` in order: a max-heap of `count`, O(n log count).
  function smallest(items, count) {
    if (items.length <= count) {
      return items.sort(compare);
    }
    const heap = [];
    const down = (start) => {
      let at = start;
      for (;;) {
        const left = 2 * at + 1;
        const right = left + 1;
        let top = at;
        if (left < heap.length && compare(heap[left], heap[top]) > 0) {
          top = left;
        }
        if (right < heap.length && compare(heap[right], heap[top]) > 0) {
          top = right;
        }
        if (top === at) {
          return;
        }
        [heap[at], heap[top]] = [heap[top], heap[at]];
        at = top;
      }
    };
    for (const item of items) {
      if (heap.length < count) {
        heap.push(item);
        let at = heap.length - 1;
        while (at > 0) {
          const parent = (at - 1) >> 1;
          if (compare(heap[at], heap[parent]) <= 0) {
            break;
          }
          [heap[at], heap[parent]] = [heap[parent], heap[at]];
          at = parent;
        }
      } else if (compare(item, heap[0]) < 0) {
        heap[0] = item;
        down(0);
      }
    }
    return heap.sort(compare);
  }

  // Each entity collection keeps its rows in a map, PartitionKey -> RowKey -> entity, instead of
  // LokiJS's two sorted key indexes ("PartitionKey", "RowKey": arrays of data positions).
  // - LokiJS splices every new row into both arrays, and a rescan's history rows go near the
  //   front of both (their keys are newest first), so each insert moved the whole index: an
  //   O(rows) write, quadratic over a week at 100,000 images. A removal also walked each index
  //   to renumber the positions after it. Azure's index has neither cost. With the map an
  //   insert is O(1), and a removal is left with LokiJS's own `data` and `idIndex` splices.
  // - Point operations (read, insert, upsert, merge, replace, delete, a batch's rollback) find
  //   their entity with `findOne({PartitionKey, RowKey})`, which LokiJS answers by narrowing
  //   one key through its index and checking the other on every row left: O(rows in the
  //   partition). The map answers it in O(1), with the same strict equality on both keys.
  // - A query that pins a partition reads that partition's rows from the map.
  // The map follows `add`, `update` and `remove` (every way Azurite changes an entity
  // collection, a failed batch's rollback included); it is rebuilt from `data` if LokiJS ever
  // replaced or resized `data` behind them. It holds the stored objects (what `data` holds),
  // and `findOne` returns them, as LokiJS does for collections that do not clone (Azurite
  // makes none that do). Dropping the sorted indexes also means that a table
  // persisted by a run with this preload (`--azurite-on-disk`) has none when plain Azurite
  // loads it again: its queries are then the same, and slower.
  const rowMap = Symbol("acr-scan row map");

  function setRow(partitions, data) {
    let rows = partitions.get(data.PartitionKey);
    if (rows === undefined) {
      rows = new Map();
      partitions.set(data.PartitionKey, rows);
    }
    rows.set(data.RowKey, data);
  }

  function buildRows(collection) {
    const partitions = new Map();
    for (const data of collection.data) {
      setRow(partitions, data);
    }
    collection[rowMap] = {
      partitions, data: collection.data, length: collection.data.length,
      maxId: collection.maxId,
    };
    return partitions;
  }

  // The collection's map, rebuilt when `data` changed in a way the hooks did not see.
  function rowsOf(collection) {
    const known = collection[rowMap];
    if (known !== undefined && known.data === collection.data
        && known.length === collection.data.length && known.maxId === collection.maxId) {
      return known.partitions;
    }
    return buildRows(collection);
  }

  // Removes the row if the map still holds `data` for it (LokiJS deletes `$loki` from an
  // entity it removes, so the entity itself is compared).
  function deleteRow(partitions, partitionKey, rowKey, data) {
    const rows = partitions.get(partitionKey);
    if (rows !== undefined && rows.get(rowKey) === data) {
      rows.delete(rowKey);
      if (rows.size === 0) {
        partitions.delete(partitionKey);
      }
    }
  }

  // The map's bookkeeping after a change the hooks made themselves.
  function seen(collection) {
    const known = collection[rowMap];
    known.data = collection.data;
    known.length = collection.data.length;
    known.maxId = collection.maxId;
  }

  // A stored entity (an object with LokiJS's `$loki`), not a batch, an id or anything else.
  function isDocument(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value)
      && Object.prototype.hasOwnProperty.call(value, "$loki");
  }

  // LokiJS's own method for a call the hooks do not follow, and the map rebuilt after it.
  function unfollowed(collection, method, argument) {
    const result = method.call(collection, argument);
    buildRows(collection);
    return result;
  }

  function keyedCollection(collection) {
    if (collection[rowMap] !== undefined) {
      return collection;
    }
    collection.binaryIndices = {};
    buildRows(collection);
    const { add, update, remove, findOne } = collection;

    collection.add = function keyedAdd(object) {
      const partitions = rowsOf(this);
      const result = add.call(this, object);
      setRow(partitions, this.data[this.data.length - 1]);
      seen(this);
      return result;
    };

    collection.update = function keyedUpdate(doc) {
      if (!isDocument(doc)) {
        return unfollowed(this, update, doc);
      }
      const partitions = rowsOf(this);
      const before = this.get(doc.$loki);
      const result = update.call(this, doc);
      if (before) {
        deleteRow(partitions, before.PartitionKey, before.RowKey, before);
      }
      const stored = this.get(doc.$loki);
      if (stored) {
        setRow(partitions, stored);
      }
      seen(this);
      return result;
    };

    collection.remove = function keyedRemove(doc) {
      const stored = typeof doc === "number" ? this.get(doc) : doc;
      if (!isDocument(stored)) {
        return unfollowed(this, remove, doc);
      }
      const partitions = rowsOf(this);
      const [partitionKey, rowKey, id] = [stored.PartitionKey, stored.RowKey, stored.$loki];
      const result = remove.call(this, doc);
      if (this.get(id) === null) {
        deleteRow(partitions, partitionKey, rowKey, stored);
      }
      seen(this);
      return result;
    };

    collection.findOne = function keyedFindOne(query) {
      if (query !== null && typeof query === "object" && Object.keys(query).length === 2
          && typeof query.PartitionKey === "string" && typeof query.RowKey === "string") {
        const rows = rowsOf(this).get(query.PartitionKey);
        const found = rows === undefined ? undefined : rows.get(query.RowKey);
        return found === undefined ? null : found;
      }
      return findOne.call(this, query);
    };
    return collection;
  }

  // The rows of one partition, in no particular order.
  function partitionRows(collection, partition) {
    const rows = rowsOf(collection).get(partition);
    return rows === undefined ? [] : Array.from(rows.values());
  }

  // A table's data positions sorted in Azurite's order, with their keys: rebuilt when a row was
  // added (LokiJS's `maxId` moves on) or removed (`data` shrinks, or is replaced by a batch
  // removal or a rollback). Merges replace an entity in its slot with the same keys.
  const sortedView = Symbol("acr-scan sorted view");

  function viewOf(collection) {
    const data = collection.data;
    const known = collection[sortedView];
    if (known !== undefined && known.data === data && known.length === data.length
        && known.maxId === collection.maxId) {
      return known;
    }
    const positions = Array.from(data.keys()).sort((first, second) => compare(data[first],
                                                                                data[second]));
    const view = {
      data, length: data.length, maxId: collection.maxId, positions,
      partitions: positions.map((at) => data[at].PartitionKey),
      rows: positions.map((at) => data[at].RowKey),
    };
    collection[sortedView] = view;
    return view;
  }

  // The first `count` entities `accepts` in Azurite's order, from the first one whose
  // PartitionKey is not below `partition` (the continuation accepts none below it).
  function inKeyOrder(collection, partition, count, accepts) {
    for (;;) {
      const view = viewOf(collection);
      let at = 0;
      if (partition !== undefined) {
        let high = view.positions.length;
        while (at < high) {
          const middle = (at + high) >> 1;
          if (view.partitions[middle] < partition) {
            at = middle + 1;
          } else {
            high = middle;
          }
        }
      }
      const found = [];
      let stale = false;
      for (; at < view.positions.length && found.length < count; at += 1) {
        const data = view.data[view.positions[at]];
        if (data.PartitionKey !== view.partitions[at] || data.RowKey !== view.rows[at]) {
          stale = true; // a row changed keys in its slot: LokiJS did something new
          break;
        }
        if (accepts(data)) {
          found.push(data);
        }
      }
      if (!stale) {
        return found;
      }
      collection[sortedView] = undefined;
    }
  }

  // `Collection.update`'s index upkeep without the linear scan: the entity's slot is looked up
  // among the index entries equal to its value (binary search, then that run only); when it is
  // there the index is still sorted and nothing moves. Anything else goes to LokiJS's own.
  // This replaces the method for every LokiJS collection of the process (Azurite's table,
  // service and, in azurite-blob, blob metadata collections): none of them depends on where
  // an unchanged value sits among its equals. Its cost is the run of equal values: a whole
  // partition for the PartitionKey index, never more than LokiJS's own scan of the index.
  const lokijs = require(require.resolve("lokijs", { paths: [persistence] }));
  const indexUpdate = lokijs.Collection.prototype.adaptiveBinaryIndexUpdate;
  lokijs.Collection.prototype.adaptiveBinaryIndexUpdate = function keptIndexUpdate(
      dataPosition, name) {
    const index = this.binaryIndices[name];
    if (index !== undefined && !index.dirty && name.indexOf(".") === -1) {
      const [first, last] = this.calculateRange("$eq", name, this.data[dataPosition][name]);
      for (let at = first; at <= last; at += 1) {
        if (index.values[at] === dataPosition) {
          return;
        }
      }
    }
    indexUpdate.call(this, dataPosition, name);
  };

  const getEntityCollection = store.prototype.getEntityCollection;
  store.prototype.getEntityCollection = function keyedEntityCollection(...args) {
    return keyedCollection(getEntityCollection.apply(this, args));
  };

  store.prototype.queryTableEntities = async function queryTableEntities(
      context, account, table, queryOptions, nextPartitionKey, nextRowKey) {
    const collection = this.getEntityCollection(account, table, context);
    const queryWhere = generator.generateQueryForPersistenceLayer(queryOptions, context);
    const maxResults = this.getMaxResultsOption(queryOptions);
    const nextPartition = this.decodeContinuationHeader(nextPartitionKey);
    const nextRow = this.decodeContinuationHeader(nextRowKey);
    // The original method's continuation predicate, unchanged.
    const continued = (data) => {
      if (nextPartition !== undefined && data.PartitionKey > nextPartition) {
        return true;
      }
      if (nextRow !== undefined) {
        return data.RowKey >= nextRow
          && (data.PartitionKey === nextPartition || data.PartitionKey === undefined);
      }
      return !(nextPartition !== undefined && data.PartitionKey < nextPartition);
    };
    const partition = pinnedPartition(queryOptions.filter);
    const result = partition !== undefined
      ? smallest(partitionRows(collection, partition).filter(
        (data) => queryWhere(data) === true && continued(data) === true), maxResults + 1)
      : inKeyOrder(collection, nextPartition, maxResults + 1,
        (data) => continued(data) && queryWhere(data) === true);
    const response = this.adjustQueryResultforTop(result, maxResults);
    return [result, response.nextPartitionKeyResponse, response.nextRowKeyResponse];
  };
  process.stderr.write("acr-scan bench: Azurite table queries read the pinned partition, " +
                       "point operations and inserts through a key map, listings from their " +
                       "continuation, merges without an index scan " +
                       "(bench/azurite_table_index.cjs)\n");
}
