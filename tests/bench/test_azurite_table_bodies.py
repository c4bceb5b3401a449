"""``bench/azurite_table_bodies.cjs``: Azurite with it preloaded sends the same bytes for every
table answer whose body it used to copy into a Buffer (an insert that returns its entity, a
query, a point read, a batch) as Azurite without it (the session's ``azurite``), and reads batch
bodies whose characters are split between the socket's chunks."""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.data.tables import TableServiceClient, UpdateMode

from scanning.local.services import Azurite
from tests.bench.modules import BENCH, load_bench, preloaded_azurite

bench_storage = load_bench("bench_storage")
PRELOAD = BENCH / "azurite_table_bodies.cjs"

# Two- three- and four-byte UTF-8 characters; repeated past 64 KB, so that the request of a
# batch reaches Azurite in several socket chunks and some character is cut between two.
TEXT = "é€😀 aä"
LONG = TEXT * 4_000  # 52,000 characters, 100,000 bytes in UTF-8


@pytest.fixture(scope="module")
def bodied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    server = preloaded_azurite(tmp_path_factory.mktemp("azurite-bodies"), table_bodies=True)
    yield server
    server.stop()


def _normalized(text: str) -> str:
    """A response body with what differs between two servers (port, times, request ids, batch
    boundaries) blanked."""
    text = re.sub(r"127\.0\.0\.1:\d+", "<host>", text)
    text = re.sub(r"(batchresponse|changesetresponse)_[0-9a-f-]+", r"\1_<id>", text)
    text = re.sub(r"RequestId:[0-9a-f-]+", "RequestId:<id>", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d(:|%3A)\d\d(:|%3A)\d\d\.\d+Z", "<time>", text)
    return re.sub(r"(Date|ETag|Timestamp): [^\r\n]*", r"\1: <header>", text)


def _answers(service: TableServiceClient) -> list[tuple[int, str, str]]:
    """Every answer of a script of table operations: status, content type and body."""
    answers: list[tuple[int, str, str]] = []

    def record(pipeline_response: Any) -> None:
        response = pipeline_response.http_response
        answers.append((response.status_code,
                        _normalized(response.headers.get("Content-Type", "")),
                        _normalized(response.body().decode("utf-8"))))

    table = service.create_table("bodies")
    calls: list[Any] = [
        lambda: table.create_entity({"PartitionKey": "p", "RowKey": "returned", "text": TEXT},
                                    response_preference="return-content",
                                    raw_response_hook=record),
        lambda: table.create_entity({"PartitionKey": "p", "RowKey": "returned"},
                                    raw_response_hook=record),  # 409: an error body
        lambda: table.submit_transaction(
            [("upsert", {"PartitionKey": "p", "RowKey": f"long{number}", "text": LONG})
             for number in range(3)]
            + [("create", {"PartitionKey": "p", "RowKey": "batched", "n": 1})],
            raw_response_hook=record),
        lambda: table.submit_transaction(  # fails on its second operation
            [("upsert", {"PartitionKey": "p", "RowKey": "never", "text": TEXT}),
             ("create", {"PartitionKey": "p", "RowKey": "batched"})],
            raw_response_hook=record),
        lambda: table.upsert_entity({"PartitionKey": "p", "RowKey": "batched", "more": TEXT},
                                    mode=UpdateMode.MERGE, raw_response_hook=record),
        lambda: table.get_entity("p", "long1", raw_response_hook=record),
        lambda: table.get_entity("p", "batched", select=["more"], raw_response_hook=record),
        lambda: table.get_entity("p", "never", raw_response_hook=record),
        lambda: list(table.query_entities("PartitionKey eq 'p' and RowKey ge 'l'",
                                          raw_response_hook=record)),
        lambda: list(table.list_entities(results_per_page=2, select=["RowKey", "n"],
                                         raw_response_hook=record)),
    ]
    for call in calls:
        with contextlib.suppress(HttpResponseError):  # its answer is recorded
            call()
    return answers


def test_the_preload_is_loaded(bodied: Azurite) -> None:
    log = (bodied.data_dir / "azurite.log").read_text(errors="replace")
    assert bench_storage.TABLE_BODIES_LOADED in log


def test_the_same_answers_with_and_without_text_bodies(azurite: Azurite,
                                                        bodied: Azurite) -> None:
    plain = _answers(TableServiceClient.from_connection_string(azurite.connection_string))
    expected_statuses = [201, 409, 202, 202, 204, 200, 200, 404, 200, 200, 200, 200]
    assert [status for status, _, _ in plain] == expected_statuses
    returned = plain[0][2]
    assert f'"text":"{TEXT}"' in returned and '"RowKey":"returned"' in returned
    # The point read of a long row comes back whole; the query (RowKey from "l") has the three
    # long rows and the one inserted first, in key order, and not the failed batch's row.
    assert plain[5][2].count(TEXT) == 4_000
    assert re.findall(r'"RowKey":"(\w+)"', plain[8][2]) == ["long0", "long1", "long2",
                                                           "returned"]
    assert _answers(TableServiceClient.from_connection_string(bodied.connection_string)) == plain


def test_stream_to_string_decodes_characters_cut_between_chunks() -> None:
    # "é€😀" is 2 + 3 + 4 bytes: cut after 1, 4 and 7 bytes, every character is split.
    script = f"""
const {{ Readable }} = require("stream");
const {{ streamToString, TextBody }} = require({str(PRELOAD)!r});
const bytes = Buffer.from("é€😀", "utf8");
const chunks = [bytes.subarray(0, 1), bytes.subarray(1, 4), bytes.subarray(4, 7),
                bytes.subarray(7)];
(async () => {{
  const cut = await streamToString(Readable.from(chunks));
  const text = await streamToString(new TextBody("a€"));
  const empty = await streamToString(new TextBody(""));
  const parts = [];
  for await (const part of new TextBody("a€")) parts.push(part);
  console.log(JSON.stringify([cut, text, empty, parts]));
}})();
"""
    result = subprocess.run(["node", "-e", script], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '["é€😀","a€","",["a€"]]'


def test_another_azurite_layout_is_left_as_it_is(tmp_path: Path) -> None:
    # An Azurite whose TableHandler buffers two bodies, not three: the preload changes nothing
    # and says so, and never writes the line the bench waits for.
    source = tmp_path / "dist" / "src"
    (source / "table" / "handlers").mkdir(parents=True)
    (source / "table" / "batch").mkdir()
    (source / "table" / "handlers" / "TableHandler.js").write_text(
        'const BufferStream_1 = { default: class { constructor(b) { this.b = b; } } };\n'
        'const text = "x";\n'
        'exports.bodies = [new BufferStream_1.default(Buffer.from(text)),\n'
        '                  new BufferStream_1.default(Buffer.from(text))];\n')
    (source / "table" / "batch" / "TableBatchUtils.js").write_text(
        "exports.default = { StreamToString: () => 'original' };\n")
    (source / "azurite.js").write_text(
        "const bodies = require('./table/handlers/TableHandler.js').bodies;\n"
        "require('./table/batch/TableBatchUtils.js');\n"
        "console.log(bodies.map((body) => Buffer.isBuffer(body.b)).join(' '));\n")
    result = subprocess.run(["node", "--require", str(PRELOAD), str(source / "azurite.js")],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "acr-scan bench: TableHandler has 2 buffered bodies, not 3; its bodies are left as "
        "they are",
        "true true"]
