"""Classifier throughput on one core: contacts/s and p99 for ~1 KB messages, against a baseline.

The baseline (decode the JSON contact and run one regex over its text) is measured in the same
run, because machines here are shared and noisy: the ratio is what to compare between runs.
Run: .venv/bin/python bench/classify.py [--contacts N]
"""

from __future__ import annotations

import os

# One core: keep numpy's BLAS from spreading over the machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import orjson  # noqa: E402

from omniroute.classifier.pipeline import Classifier  # noqa: E402
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


def measure(payloads: list[bytes], work: Callable[[bytes], object]) -> tuple[list[float], float]:
    """Wall time per call, and CPU seconds of this thread for the whole run."""
    for payload in payloads[:200]:
        work(payload)
    timings = []
    cpu_started = time.thread_time()
    for payload in payloads:
        started = time.perf_counter()
        work(payload)
        timings.append(time.perf_counter() - started)
    return timings, time.thread_time() - cpu_started


def summary(timings: list[float], cpu: float) -> tuple[float, float, float, float]:
    ordered = sorted(timings)
    per_second = len(ordered) / sum(ordered)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return per_second, len(ordered) / cpu, p50 * 1000, p99 * 1000


def row(label: str, figures: tuple[float, float, float, float]) -> str:
    wall, cpu, p50, p99 = figures
    return f"{label:<36}{wall:>10,.0f}{cpu:>10,.0f}{p50:>9.3f}{p99:>9.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=5000)
    parser.add_argument("--size", type=int, default=1024, help="message size in characters")
    args = parser.parse_args()

    started = time.perf_counter()
    classifier = Classifier(ClassifierSettings())
    load_seconds = time.perf_counter() - started
    contacts = make_contacts(args.contacts, args.size)
    payloads = [encode_event(c) for c in contacts]
    word = re.compile(r"\w+")

    def baseline(payload: bytes) -> object:
        decoded = orjson.loads(payload)
        return len(word.findall(decoded["text"]))

    def pipeline(payload: bytes) -> object:
        contact = decode_event(InboundContact, payload)
        return encode_event(classifier.classify(contact))

    base = summary(*measure(payloads, baseline))
    full = summary(*measure(payloads, pipeline))
    print(f"classifier {classifier.version} loaded in {load_seconds:.2f}s")
    print(f"{args.contacts} contacts of {args.size} chars, one thread")
    print(f"{'':<36}{'/s wall':>10}{'/s cpu':>10}{'p50 ms':>9}{'p99 ms':>9}")
    print(row("baseline (json decode + regex)", base))
    print(row("pipeline (decode, classify, encode)", full))
    print(
        f"pipeline costs {base[0] / full[0]:.1f}x the baseline (wall), "
        f"{base[1] / full[1]:.1f}x (cpu)"
    )
    met = full[0] >= 3000 and full[3] < 5
    print(f"target >= 3,000/s per core and p99 < 5 ms: {'met' if met else 'NOT met'} (wall)")


if __name__ == "__main__":
    main()
