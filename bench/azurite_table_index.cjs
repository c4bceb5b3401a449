// Preloaded into Azurite (`node --require`) by `bench_rescan.py --table-index`: makes its table
// queries cost what Azure Table Storage's do, O(rows that match) instead of O(rows in the table).
//
// Azurite 3.35-3.37 answers every Query Entities (`LokiTableMetadataStore.queryTableEntities`)
// by running the interpreted filter on every entity of the table and sorting all matches, once
// per page. A rescan's key-range reads (`PartitionKey eq @pk and RowKey ge @low and RowKey le
// @high`, one or more per chunk) therefore each scan the whole images table, and a week at
// 100,000 images is quadratic on Azurite while Azure serves such a range from its index.
//
// This replaces that one method with the same filter, continuation and order, and two changes:
// - when the filter pins the partition (`PartitionKey eq '<text>'` as a term of a top-level
//   `and`, which is how every partition query of acr-scan reads), the candidates are that
//   partition, found through the PartitionKey index Azurite already keeps for its point reads
//   (`findOne({PartitionKey, RowKey})`), and the filter runs on them only;
// - the page (the first `top` + 1 matches in PartitionKey, RowKey order) is selected with a
//   bounded heap instead of sorting every match.
// Any other query (no filter, a partition named under `or` or `not`: the paged listings of a
// whole table) walks the table in key order from its continuation, through a sorted view of the
// table's positions kept until a row is added or removed, and stops at the page's last match:
// Azurite evaluated the filter on every entity for every page, so listing a table of n rows in
// pages of 1,000 cost n * n / 1,000 evaluations (20 million for the two listings of a
// 100,000-image week), where Azure reads a page from its continuation.
// Merges (`Collection.update`) keep an entity's keys, but LokiJS looked for the entity's slot
// in each key index with a linear scan and moved it out and back in (O(rows) per merge); the
// slot is now found by a binary search, and left where it is when it is still in order.
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

  // Point operations (read, insert, upsert, merge, replace, delete, a batch's rollback) find
  // the entity with `findOne({PartitionKey, RowKey})`: LokiJS narrows by the first field
  // through its index and checks the second on every row left, so each costs O(rows in the
  // partition), and a rescan's history, 16 partitions a run, grows quadratic. The same two
  // equalities are asked with the narrower index first (Azurite 3.37 put RowKey first in one
  // of these calls): the same entity comes back. When few rows share the RowKey (the usual
  // case: digests, scan ids), they are looked through directly.
  const keyed = Symbol("acr-scan keyed findOne");
  // A RowKey shared by at most this many rows is looked through directly.
  const FEW_ROWS = 16;

  function matching(collection, property, value) {
    if (!collection.binaryIndices || !collection.binaryIndices[property]) {
      return Infinity;
    }
    collection.ensureIndex(property);
    const [first, last] = collection.calculateRange("$eq", property, value);
    return last - first + 1;
  }

  function keyedFindOne(collection) {
    if (collection[keyed]) {
      return collection;
    }
    const findOne = collection.findOne;
    collection.findOne = function keyedFind(query) {
      if (query !== null && typeof query === "object" && Object.keys(query).length === 2
          && typeof query.PartitionKey === "string" && typeof query.RowKey === "string"
          && !this.cloneObjects && this.binaryIndices && this.binaryIndices.RowKey) {
        this.ensureIndex("RowKey");
        const [first, last] = this.calculateRange("$eq", "RowKey", query.RowKey);
        if (last - first < FEW_ROWS) {
          // What LokiJS's find does with that range (strict equality on both keys), without
          // building a result set and computing the range a second time.
          const values = this.binaryIndices.RowKey.values;
          for (let at = first; at <= last; at += 1) {
            const data = this.data[values[at]];
            if (data.RowKey === query.RowKey && data.PartitionKey === query.PartitionKey) {
              return data;
            }
          }
          return null;
        }
        if (last - first + 1 < matching(this, "PartitionKey", query.PartitionKey)) {
          return findOne.call(this, { RowKey: query.RowKey, PartitionKey: query.PartitionKey });
        }
      }
      return findOne.call(this, query);
    };
    collection[keyed] = true;
    return collection;
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
    return keyedFindOne(getEntityCollection.apply(this, args));
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
      ? smallest(collection.chain().find({ PartitionKey: partition }).where(queryWhere)
        .where(continued).data(), maxResults + 1)
      : inKeyOrder(collection, nextPartition, maxResults + 1,
        (data) => continued(data) && queryWhere(data) === true);
    const response = this.adjustQueryResultforTop(result, maxResults);
    return [result, response.nextPartitionKeyResponse, response.nextRowKeyResponse];
  };
  process.stderr.write("acr-scan bench: Azurite table queries read the pinned partition " +
                       "through its index, listings from their continuation, point operations the " +
                       "narrower index first, merges without an index scan " +
                       "(bench/azurite_table_index.cjs)\n");
}
