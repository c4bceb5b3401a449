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
// Anything else (no filter, a partition named under `or` or `not`) scans as before. What comes
// back is the same entities in the same order with the same continuation: tests/bench/
// test_azurite_table_index.py compares both over the same data.

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
  // of these calls): the same entity comes back.
  const keyed = Symbol("acr-scan keyed findOne");

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
          && matching(this, "RowKey", query.RowKey)
             < matching(this, "PartitionKey", query.PartitionKey)) {
        return findOne.call(this, { RowKey: query.RowKey, PartitionKey: query.PartitionKey });
      }
      return findOne.call(this, query);
    };
    collection[keyed] = true;
    return collection;
  }

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
    const partition = pinnedPartition(queryOptions.filter);
    let candidates = collection.chain();
    if (partition !== undefined) {
      candidates = candidates.find({ PartitionKey: partition });
    }
    // The original method's continuation predicate, unchanged.
    const matches = candidates
      .where(queryWhere)
      .where((data) => {
        if (nextPartition !== undefined && data.PartitionKey > nextPartition) {
          return true;
        }
        if (nextRow !== undefined) {
          return data.RowKey >= nextRow
            && (data.PartitionKey === nextPartition || data.PartitionKey === undefined);
        }
        return !(nextPartition !== undefined && data.PartitionKey < nextPartition);
      })
      .data();
    const result = smallest(matches, maxResults + 1);
    const response = this.adjustQueryResultforTop(result, maxResults);
    return [result, response.nextPartitionKeyResponse, response.nextRowKeyResponse];
  };
  process.stderr.write("acr-scan bench: Azurite table queries read the pinned partition " +
                       "through its index, point operations the narrower index first " +
                       "(bench/azurite_table_index.cjs)\n");
}
