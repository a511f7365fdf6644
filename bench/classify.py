"""Classifier throughput on one core: contacts/s and p99 for ~1 KB messages, against a baseline.

The baseline (decode the JSON contact and run one regex over its text) is measured in the same
run, alternating with the pipeline, because machines here are shared and noisy: the ratio is
what to compare between runs. Throughput and latency are given in this thread's CPU time (what
one core spends per contact, whatever the neighbours do) and on the wall clock; the best and
the median of the rounds are printed. Contacts go through the pipeline as the worker's handler
sends them, `BATCH_SIZE` at a time (`Classifier.classify_many`); a contact's latency is then its
batch's. `--batch 1` measures one contact at a time.
Run: .venv/bin/python bench/classify.py [--contacts N] [--rounds R] [--batch B]
"""

from __future__ import annotations

import os

# One core: keep numpy's BLAS from spreading over the machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import NamedTuple  # noqa: E402

import orjson  # noqa: E402

from omniroute.classifier.pipeline import BATCH_SIZE, Classifier  # noqa: E402
from omniroute.shared.events import Channel, CustomerRef, InboundContact, Visibility  # noqa: E402
from omniroute.shared.settings import ClassifierSettings  # noqa: E402
from omniroute.shared.transport.base import decode_event, encode_event  # noqa: E402

SENTENCES = {
    "es": [
        "Hola, os escribo porque el pedido que hice la semana pasada todavía no ha llegado.",
        "El número de seguimiento no muestra ningún movimiento desde el lunes.",
        "Me habéis cobrado dos veces en la tarjeta 4111 1111 1111 1111 y quiero el reembolso.",
        "Llevo tres días llamando y nadie me da una solución, estoy muy decepcionado.",
        "Si no lo arregláis hoy mismo me doy de baja y pondré una reclamación en consumo.",
        "Podéis contactarme en el 612 345 678 o en ana.garcia@example.com por la tarde.",
        "La aplicación se cierra cada vez que intento pagar y la web tampoco carga.",
        "Gracias de antemano por vuestra ayuda, espero una respuesta pronto.",
    ],
    "en": [
        "Hello, I'm writing because the order I placed last week still hasn't arrived.",
        "The tracking number hasn't shown any movement since Monday.",
        "You charged my card 5500 0000 0000 0004 twice and I want a refund now!!",
        "I've been calling for three days and nobody gives me a solution, very disappointed.",
        "If this isn't fixed today I will cancel my subscription and talk to my lawyer.",
        "You can reach me on +44 20 7946 0958 or john.smith@example.com after 5pm.",
        "The app crashes every time I try to pay and the website won't load either.",
        "Thanks in advance for your help, I look forward to hearing from you.",
    ],
}
CHANNELS = [Channel.EMAIL, Channel.CHAT, Channel.WHATSAPP, Channel.X, Channel.SMS]


def make_contacts(count: int, size: int = 1024, seed: int = 7) -> list[InboundContact]:
    rng = random.Random(seed)
    contacts = []
    for index in range(count):
        language = "es" if index % 2 else "en"
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < size:
            parts.append(rng.choice(SENTENCES[language]))
        channel = CHANNELS[index % len(CHANNELS)]
        contacts.append(
            InboundContact.build(
                channel=channel,
                external_id=f"bench-{index}",
                conversation_key=f"conv-{index % 500}",
                text=" ".join(parts)[:size],
                visibility=Visibility.PUBLIC if channel is Channel.X else Visibility.PRIVATE,
                customer=CustomerRef(tier="vip" if index % 10 == 0 else None),
            )
        )
    return contacts


class Figures(NamedTuple):
    """One measured run: throughput and latency on the wall clock and in this thread's CPU."""

    wall_rate: float
    cpu_rate: float
    wall_p50: float
    wall_p99: float
    cpu_p50: float
    cpu_p99: float


def measure(payloads: list[bytes], work: Callable[[list[bytes]], object], batch: int) -> Figures:
    """Per contact: wall time and this thread's CPU time (what one core spends, however shared).

    Contacts go through `work` `batch` at a time, as the worker classifies what arrives
    together: each contact's latency is its batch's (its result is ready when the batch's is).
    """
    for first in range(0, 200, batch):
        work(payloads[first : first + batch])
    walls, cpus = [], []
    wall_total = cpu_total = 0.0
    wall_clock, cpu_clock = time.perf_counter, time.thread_time
    for first in range(0, len(payloads), batch):
        chunk = payloads[first : first + batch]
        wall_started, cpu_started = wall_clock(), cpu_clock()
        work(chunk)
        cpu = cpu_clock() - cpu_started
        wall = wall_clock() - wall_started
        cpus.extend([cpu] * len(chunk))
        walls.extend([wall] * len(chunk))
        cpu_total += cpu
        wall_total += wall
    return Figures(
        len(payloads) / wall_total,
        len(payloads) / cpu_total,
        _quantile(walls, 0.5) * 1000,
        _quantile(walls, 0.99) * 1000,
        _quantile(cpus, 0.5) * 1000,
        _quantile(cpus, 0.99) * 1000,
    )


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def row(label: str, figures: Figures) -> str:
    return (
        f"{label:<40}{figures.cpu_rate:>9,.0f}{figures.cpu_p50:>8.3f}{figures.cpu_p99:>8.3f}"
        f"{figures.wall_rate:>10,.0f}{figures.wall_p50:>8.3f}{figures.wall_p99:>8.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--size", type=int, default=1024, help="message size in characters")
    parser.add_argument("--rounds", type=int, default=3, help="alternating measured rounds")
    parser.add_argument(
        "--batch",
        type=int,
        default=BATCH_SIZE,
        help="contacts classified together (the worker's BATCH_SIZE; 1: one at a time)",
    )
    args = parser.parse_args()

    started = time.perf_counter()
    classifier = Classifier(ClassifierSettings())
    load_seconds = time.perf_counter() - started
    contacts = make_contacts(args.contacts, args.size)
    payloads = [encode_event(c) for c in contacts]
    word = re.compile(r"\w+")

    def baseline(chunk: list[bytes]) -> object:
        return [len(word.findall(orjson.loads(payload)["text"])) for payload in chunk]

    def pipeline(chunk: list[bytes]) -> object:
        # What the worker's handler does with the contacts that arrived together.
        contacts = [decode_event(InboundContact, payload) for payload in chunk]
        return [encode_event(result) for result in classifier.classify_many(contacts)]

    # Baseline and pipeline alternate, so a burst of load from a neighbour hits both.
    bases, fulls = [], []
    for _ in range(max(1, args.rounds)):
        bases.append(measure(payloads, baseline, args.batch))
        fulls.append(measure(payloads, pipeline, args.batch))
    print(f"classifier {classifier.version} loaded in {load_seconds:.2f}s")
    print(
        f"{args.contacts} contacts of {args.size} chars, one thread, {len(fulls)} rounds, "
        f"{args.batch} at a time (latency: the batch's)"
    )
    header = ("cpu: /s", 9), ("p50 ms", 8), ("p99 ms", 8), ("wall: /s", 10), ("p50 ms", 8)
    print(f"{'':<40}" + "".join(f"{name:>{width}}" for name, width in header) + f"{'p99 ms':>8}")
    for name, runs in (("baseline (json decode + regex)", bases), ("pipeline", fulls)):
        ranked = sorted(runs, key=lambda f: -f.cpu_rate)
        print(row(f"{name}, best", ranked[0]))
        print(row(f"{name}, median", ranked[len(ranked) // 2]))
    best_base = max(bases, key=lambda f: f.cpu_rate)
    best = max(fulls, key=lambda f: f.cpu_rate)
    median = sorted(fulls, key=lambda f: f.cpu_rate)[len(fulls) // 2]
    ratios = sorted(b.cpu_rate / f.cpu_rate for b, f in zip(bases, fulls, strict=True))
    print(
        f"pipeline costs {ratios[len(ratios) // 2]:.1f}x the baseline in CPU "
        f"(median of rounds; best round {best_base.cpu_rate / best.cpu_rate:.1f}x)"
    )
    met = median.cpu_rate >= 3000 and median.cpu_p99 < 5
    print(
        "target >= 3,000/s per core and p99 < 5 ms (CPU, median round): "
        f"{'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
