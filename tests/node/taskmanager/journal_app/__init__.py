"""A small app for the node's tests, controlled by its params and gate files.

Task params: `{"parts": N, "seed": "s", "await_data": K, "steps": M}`. Part i's
result is sha256 of seed, i and the input file; when every part is verified,
`task_outputs/result.json` = `{"parts": [hash of part 0, ...]}`.

Every verdict (and abort) is appended to `journal.jsonl` in the task dir, so
a test counts the Verify calls that reached a verdict. Controls, from the
environment (the node passes its own to the apps):

- `JOURNAL_GATES=DIR`: a compute writes `DIR/computing-SUBTASK` (its pid),
  then waits while `DIR/hold-compute` exists; a Verify writes
  `DIR/verifying-SUBTASK`, then waits while `DIR/hold-verify` exists; a
  provider writes `DIR/starting-PID` before it serves, then waits while
  `DIR/hold-start` exists.
- `JOURNAL_FORGE=node-2,...`: providers running under those compute nodes
  (their work dir is in `providers/NODE/`) return a forged result.
"""

import hashlib
import json
from pathlib import Path

INPUT = "input.txt"
RESULT = "result.txt"
OUTPUT = "result.json"


def part_hash(seed: str, part: int, data: bytes) -> str:
    return hashlib.sha256(f"{seed}:{part}:".encode() + data).hexdigest()


def expected_output(seed: str, parts: int, data: bytes) -> dict[str, list[str]]:
    return {"parts": [part_hash(seed, i, data) for i in range(parts)]}


def read_journal(path: Path) -> list[dict[str, object]]:
    journal = Path(path)
    if not journal.exists():
        return []
    return [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
