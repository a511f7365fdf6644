"""The classifier's modules compiled with mypyc (hatch_build.py) against their sources."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from omniroute.classifier import compiled_is_fresh
from omniroute.shared.events import Channel, CustomerRef, InboundContact, TranscriptTurn, Visibility

ROOT = Path(__file__).resolve().parents[2]
HELDOUT = Path(__file__).parent / "data" / "heldout.jsonl"
# Pieces that reach every step: personal data, shouting, "!!", emojis, odd apostrophes, numbers,
# threats, spam, and words no model has seen.
EXTRAS = [
    "4111 1111 1111 1111",
    "cvv 123",
    "ES91 2100 0418 4502 0005 1332",
    "+34 612 345 678",
    "12345678Z",
    "ana.garcia@example.com",
    "exp 12/27",
    "ESTO ES UNA VERGÜENZA!!!",
    "😡",
    "don't 'quoted' rock'n'roll",
    "½ straße naïve",
    "os voy a denunciar",
    "i'll cancel my subscription",
    "click here to claim your prize",
    "zzqxv blorptastic 8812344",
    "muchas gracias, todo perfecto",
]


def sample_outputs(count: int = 300) -> bytes:
    """Classified JSON of `count` varied contacts at fixed times, one per line."""
    from omniroute.classifier.pipeline import Classifier
    from omniroute.shared.settings import ClassifierSettings
    from omniroute.shared.transport.base import encode_event

    classifier = Classifier(ClassifierSettings(model_dir=None, timezone="Europe/Madrid"))
    texts = [json.loads(line)["text"] for line in HELDOUT.read_text().splitlines() if line]
    rng = random.Random(3)
    start = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    lines = []
    for index in range(count):
        parts = rng.sample(texts, rng.randint(1, 6)) + rng.sample(EXTRAS, rng.randint(0, 4))
        rng.shuffle(parts)
        channel = rng.choice(list(Channel))
        fields: dict[str, object] = {}
        if index % 7 == 0:
            fields["subject"] = rng.choice(EXTRAS)
        if channel is Channel.PHONE:
            fields["transcript"] = [
                TranscriptTurn(speaker=speaker, text=rng.choice(texts + EXTRAS))
                for speaker in ("customer", "agent", "customer")
            ]
        inbound = InboundContact.build(
            channel=channel,
            external_id=f"compiled-{index}",
            conversation_key=f"compiled-{index % 40}",
            received_at=start + timedelta(minutes=rng.randint(0, 400 * 24 * 60)),
            text=" ".join(parts),
            visibility=Visibility.PUBLIC if index % 5 == 0 else Visibility.PRIVATE,
            customer=CustomerRef(tier="vip" if index % 9 == 0 else None),
            **fields,
        )
        result = classifier.classify(inbound, now=now, repeated_contact=index % 11 == 0)
        lines.append(encode_event(result))
    return b"\n".join(lines)


# Classified in a process of its own, written to the file named by its argument (stdout
# carries the logs).
_RUN = (
    "import sys\n"
    "from pathlib import Path\n"
    "from omniroute.classifier import COMPILED\n"
    "from tests.classifier.test_compiled import sample_outputs\n"
    "Path(sys.argv[1]).write_bytes(b'%d\\n' % COMPILED + sample_outputs())\n"
)


def _classify_in_process(pure: bool, out: Path) -> tuple[bool, bytes]:
    env = {key: value for key, value in os.environ.items() if key != "OMNIROUTE_CLASSIFIER_PURE"}
    if pure:
        env["OMNIROUTE_CLASSIFIER_PURE"] = "1"
    subprocess.run(
        [sys.executable, "-c", _RUN, str(out)], cwd=ROOT, env=env, capture_output=True, check=True
    )
    compiled, _, outputs = out.read_bytes().partition(b"\n")
    return compiled == b"1", outputs


class TestCompiledBuild:
    def test_compiled_modules_classify_as_the_sources_do(self, tmp_path: Path) -> None:
        compiled, outputs = _classify_in_process(pure=False, out=tmp_path / "compiled")
        if not compiled:
            pytest.skip("this install runs the classifier from its sources (not compiled)")
        pure, expected = _classify_in_process(pure=True, out=tmp_path / "pure")
        assert not pure
        assert outputs.count(b"\n") == 299
        assert outputs == expected


class TestStaleBuild:
    def _build(self, tmp_path: Path) -> tuple[Path, Path]:
        sources, compiled = tmp_path / "src", tmp_path / "compiled"
        sources.mkdir()
        compiled.mkdir()
        (sources / "text.py").write_text("x = 1\n")
        digest = hashlib.sha256(b"x = 1\n").hexdigest()
        manifest = {"group": "g", "sources": {"text": digest}}
        (compiled / "sources.json").write_text(json.dumps(manifest))
        return sources, compiled

    def test_a_build_of_the_sources_as_they_are_is_used(self, tmp_path: Path) -> None:
        sources, compiled = self._build(tmp_path)
        assert compiled_is_fresh(compiled, sources)

    def test_an_edited_source_is_not_shadowed(self, tmp_path: Path) -> None:
        sources, compiled = self._build(tmp_path)
        (sources / "text.py").write_text("x = 2\n")
        assert not compiled_is_fresh(compiled, sources)

    def test_a_missing_source_or_manifest_is_not_fresh(self, tmp_path: Path) -> None:
        sources, compiled = self._build(tmp_path)
        (sources / "text.py").unlink()
        assert not compiled_is_fresh(compiled, sources)
        assert not compiled_is_fresh(tmp_path / "nowhere", sources)
