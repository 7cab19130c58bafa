"""Checking a provider's result without trusting it.

Every reported nonce is checked (in range, a real solution, no duplicates);
omissions are caught by recomputing a random sample of the range, which
the provider cannot predict.
"""

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

from apps.tutorial import pow
from apps.tutorial.params import SubtaskParams

# Share of the range recomputed, and bounds on the sample size; the sample
# also grows until it is expected to hold SAMPLE_SOLUTIONS solutions, so that
# an omission is caught even where solutions are sparse.
SAMPLE_SHARE = 0.03
SAMPLE_SOLUTIONS = 16
MIN_SAMPLE = 256
MAX_SAMPLE = 50_000
MAX_RESULT_BYTES = 64 * 1024 * 1024
# An honest result is refused for having too few solutions with at most this
# probability.
FALSE_REJECTION = 1e-9


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None
    nonces: list[int]


def _fail(reason: str) -> Verdict:
    return Verdict(False, reason, [])


def read_nonces(result_file: Path) -> list[int] | str:
    """The nonces of a result file, or why the file is unusable."""
    try:
        if result_file.stat().st_size > MAX_RESULT_BYTES:
            return f"{result_file.name} is larger than {MAX_RESULT_BYTES} bytes"
        content = json.loads(result_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no result file {result_file.name}"
    except (OSError, ValueError) as exc:
        return f"{result_file.name} is not valid JSON: {exc}"
    nonces = content.get("nonces") if isinstance(content, dict) else None
    if not isinstance(nonces, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) for n in nonces
    ):
        return f'{result_file.name} must be {{"nonces": [integers]}}'
    return nonces


def verify_range(
    data: bytes, params: SubtaskParams, result_file: Path, rng: random.Random | None = None
) -> Verdict:
    nonces = read_nonces(result_file)
    if isinstance(nonces, str):
        return _fail(nonces)
    if len(set(nonces)) != len(nonces):
        return _fail("the result lists a nonce twice")
    outside = [n for n in nonces if not params.start <= n < params.end]
    if outside:
        return _fail(f"nonce {outside[0]} is outside the range [{params.start}, {params.end})")
    real = set(pow.solutions_among(data, nonces, params.difficulty))
    forged = [n for n in nonces if n not in real]
    if forged:
        return _fail(
            f"nonce {forged[0]} does not have {params.difficulty} leading zero bits"
            f" ({len(forged)} of {len(nonces)} reported nonces are not solutions)"
        )
    expected = params.size / 2**params.difficulty
    if poisson_at_most(len(nonces), expected) < FALSE_REJECTION:
        return _fail(
            f"{len(nonces)} solutions reported where about {expected:.0f} are expected:"
            " the range was not fully searched"
        )
    rng = rng or random.Random()
    sample_size = sample_size_for(params)
    sample = rng.sample(range(params.start, params.end), sample_size)
    reported = set(nonces)
    omitted = [n for n in pow.solutions_among(data, sample, params.difficulty) if n not in reported]
    if omitted:
        return _fail(
            f"nonce {min(omitted)} is a solution but missing from the result"
            f" (found by recomputing {sample_size} random nonces of the range)"
        )
    return Verdict(True, None, sorted(nonces))


def sample_size_for(params: SubtaskParams) -> int:
    wanted = max(params.size * SAMPLE_SHARE, SAMPLE_SOLUTIONS * 2.0**params.difficulty)
    return min(params.size, max(MIN_SAMPLE, min(MAX_SAMPLE, int(wanted))))


def poisson_at_most(count: int, mean: float) -> float:
    """P(X <= count) for X ~ Poisson(mean): how likely so few solutions are."""
    if count >= mean:
        return 1.0
    if mean > 1000:
        # Normal approximation, with continuity correction.
        return 0.5 * math.erfc((mean - count - 0.5) / math.sqrt(2 * mean))
    log_mean = math.log(mean)
    return math.fsum(
        math.exp(k * log_mean - mean - math.lgamma(k + 1)) for k in range(count + 1)
    )
