"""The 5% week's per-image re-match path without storage: what one worker process spends on
each re-matched image, stage by stage (issue #17).

    .venv/bin/python bench/bench_rematch.py [--images 2000] [--packages 300] [--profile]

It builds ``bench_rescan``'s inventories and its indexes A and B (B adds ~5% of the records),
assesses every image with A as the first assessment does (match keys, findings), then times,
per image, what ``RescanRun.rematch`` does with B in a worker:

1. ``parse``: the row's match keys decoded (``read_match_keys``) and the inventory document
   read back: its digest, then, when the keys were listed from this same document (they
   name its digest), only the packages matching
   against B can use (``parse_inventories(named_in=B)``, as ``RescanRun.read_inventories``
   does), else all of them (``--full``: always all, as before the keys named the document);
2. ``signatures``: the signatures B left alone kept from those keys
   (``unchanged_signatures``);
3. ``evaluate``: matching against B and the verdict (``evaluate``, match keys included, the
   lookups taken from the row's keys when the document is theirs);
4. ``encode``: the findings document and keys (``encode_findings``);
5. ``notification``: the message an image with new findings gets (``notification``).

No storage, no queue and no row merge: those are ``bench_rescan.py``'s. The timings are CPU
seconds of this process (``time.process_time``), per image, over ``--images`` images; the
first image of each index fills its memos, as in a worker. ``--profile`` adds a cProfile of
the timed pass (top 25 by own time; the stage timings then include the profiler's own
overhead, about twice as much). Reports the findings fingerprint of the last image, so
two runs on different code can be checked to give the same documents.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_rescan import catalogue, image_digest, image_inventory, load_records, weekly_indexes

from scanning.advisories.index import (
    compile_index,
    diff_key_fingerprints,
    key_fingerprints,
)
from scanning.matching import unchanged_signatures
from scanning.model import ScanTrigger
from scanning.notify import summarise
from scanning.service.evaluation import (
    evaluate,
    inventory_digest,
    inventory_document,
    notification,
    parse_inventories,
)
from scanning.service.payloads import ScanRequest
from scanning.store.findings import encode_findings
from scanning.store.match_keys import read_match_keys

REGISTRY = "bench.azurecr.io"
STAGES = ("parse", "signatures", "evaluate", "encode", "notification")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--full", action="store_true",
                        help="build every package and list every lookup (the path before "
                             "the match keys named their inventory document)")
    options = parser.parse_args()

    records, source = load_records()
    # bench_rescan's seed, so A and B are its indexes A and B.
    index_a_records, index_b_records, _ = weekly_indexes(records, random.Random(7))
    index_a = compile_index(index_a_records, sources=["index-a"])
    index_b = compile_index(index_b_records, sources=["index-b"])
    change = diff_key_fingerprints(key_fingerprints(index_a), key_fingerprints(index_b))
    known = catalogue(records)
    moment = datetime.now(UTC)
    print(f"advisories: {len(records)} from {source}; A {len(index_a_records)}, "
          f"B {len(index_b_records)} records; {len(change.keys)} keys changed")

    images = []
    for number in range(options.images):
        data = inventory_document(image_digest(number), (
            image_inventory(known, number, options.packages, number),))
        request = ScanRequest(registry=REGISTRY, repository="team/app",
                              digest=image_digest(number), trigger=ScanTrigger.RESCAN,
                              requested_at=moment.isoformat())
        inventories = parse_inventories(data, REGISTRY, request.digest)
        assert inventories is not None
        first = evaluate(inventories, request=request, rules=(), index=index_a, moment=moment,
                         inventory="" if options.full else inventory_digest(data))
        previous = summarise(first.verdict.status, first.verdict.findings)
        images.append((data, request, first.match_keys, previous))
    print(f"first assessment of {len(images)} images x {options.packages} packages done")

    spent = dict.fromkeys(STAGES, 0.0)
    notified = lean_images = 0
    fingerprint = ""
    profiler = cProfile.Profile() if options.profile else None
    if profiler:
        profiler.enable()
    clock = time.process_time
    for data, request, match_keys, previous in images:
        start = clock()
        digest = inventory_digest(data)
        keys = read_match_keys(match_keys)
        lean = keys is not None and keys.inventory == digest
        inventories = parse_inventories(data, REGISTRY, request.digest,
                                        named_in=index_b if lean else None)
        parsed = clock()
        kept = unchanged_signatures(keys.signed, change, index_b) if keys else {}
        signed_at = clock()
        assert inventories is not None
        evaluation = evaluate(
            inventories, request=request, rules=(), index=index_b, moment=moment,
            signatures=kept, inventory=digest,
            lookups=[lookup for lookup, _ in keys.signed] if lean and keys else None)
        evaluated = clock()
        lean_images += lean
        encoded = encode_findings(request.digest, evaluation.verdict.platforms)
        encoded_at = clock()
        message = notification(request, evaluation.verdict, previous, None)
        done = clock()
        notified += message is not None
        fingerprint = encoded.fingerprint
        for stage, (begin, end) in zip(STAGES, ((start, parsed), (parsed, signed_at),
                                               (signed_at, evaluated), (evaluated, encoded_at),
                                               (encoded_at, done)), strict=True):
            spent[stage] += end - begin
    if profiler:
        profiler.disable()
    count = len(images)
    total = sum(spent.values())
    print("per re-matched image, CPU ms: " + ", ".join(
        f"{stage} {spent[stage] / count * 1000:.2f}" for stage in STAGES)
        + f"; total {total / count * 1000:.2f} ({total:.1f} s for {count})")
    print(f"{lean_images} of {count} read lean (lookups from the keys); {notified} would be "
          f"notified; last findings fingerprint {fingerprint[:16]}")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main())
