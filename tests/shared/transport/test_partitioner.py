"""Our partitioner puts every key where Kafka's default partitioner (and aiokafka's) would."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from omniroute.shared.transport.partitioner import default_partition, murmur2


@pytest.mark.parametrize(
    ("data", "java_int"),
    # From the Java client's UtilsTest.testMurmur2: Utils.murmur2 as a signed int.
    [
        (b"21", -973932308),
        (b"foobar", -790332482),
        (b"a-little-bit-long-string", -985981536),
        (b"a-little-bit-longer-string", -1486304829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        (b"abc", 479470107),
    ],
)
def test_murmur2_matches_the_java_client(data: bytes, java_int: int) -> None:
    assert murmur2(data) == java_int & 0xFFFFFFFF


def test_murmur2_matches_aiokafka_for_every_tail_length() -> None:
    rng = random.Random(7)
    for length in range(0, 70):
        for _ in range(50):
            data = rng.randbytes(length)
            assert murmur2(data) == aiokafka_murmur2(data)


def test_keys_land_on_the_partitions_aiokafka_would_choose() -> None:
    rng = random.Random(11)
    for count in (1, 3, 8, 12):
        partitions = list(range(count))
        for _ in range(300):
            key = str(rng.getrandbits(128)).encode()
            expected = DefaultPartitioner()(key, partitions, partitions)
            assert default_partition(key, partitions, partitions) == expected


def test_unkeyed_messages_go_to_an_available_partition() -> None:
    chosen = {default_partition(None, [0, 1, 2, 3], [1, 2]) for _ in range(200)}
    assert chosen == {1, 2}
    assert default_partition(None, [0, 1], []) in (0, 1)
