"""``bench/bench_storage.start_storage``: the Azurite a rescan bench runs against starts with
the young generation it is asked for (V8 options ``NODE_OPTIONS`` refuses go on ``node``'s
command line), and serves."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from tests.bench.modules import load_bench

bench_storage = load_bench("bench_storage")

# Preloaded through NODE_OPTIONS: writes the young generation's semi-space size to the log.
PROBE = """
const space = require("v8").getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
process.stderr.write(`probe: new space ${space.space_size}\\n`);
"""


@pytest.mark.parametrize(("semi_space_mib", "expected"), [(8, 8 * 2**20), (0, 1 * 2**20)])
def test_azurite_starts_with_the_young_generation_asked_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, semi_space_mib: int,
        expected: int) -> None:
    probe = tmp_path / "probe.cjs"
    probe.write_text(PROBE)
    monkeypatch.setenv("NODE_OPTIONS", f'--require "{probe}"')
    storage = bench_storage.start_storage(tmp_path / "storage", semi_space_mib=semi_space_mib)
    try:
        process = storage.processes[0]
        command = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        flags = [b"--min-semi-space-size=8", b"--max-semi-space-size=8"]
        assert (command[1:3] == flags) is (semi_space_mib > 0)
        service = TableServiceClient.from_connection_string(storage.connection_string)
        service.create_table("probed")
        assert [table.name for table in service.list_tables()] == ["probed"]
        log = (tmp_path / "storage" / "azurite" / "azurite.log").read_text()
        # V8 starts a young generation it sizes itself at 1 MB semi-spaces (16 MB at most).
        assert f"probe: new space {expected}\n" in log
    finally:
        storage.stop()
