import imagehash
import numpy as np
import pytest
from PIL import Image

from imagelake.images.phash import (
    DCT_SIDE,
    HashError,
    distances,
    from_hex,
    hamming,
    luma_for_hash,
    phash,
    phash_of_luma,
    to_hex,
)
from imagelake.settings import DUPLICATE_MAX_DISTANCE
from tests.support import sample_images as images

#: The product's promise is about its threshold: a copy is within it, another picture beyond it
#: (the exact distances are the hash's rounding, not our contract).
NEAR = DUPLICATE_MAX_DISTANCE


@pytest.mark.parametrize("seed", range(4))
def test_phash_is_bit_for_bit_imagehash_on_the_same_input(seed):
    im = images.scene(256, 192, seed)
    ours = phash_of_luma(luma_for_hash(im))
    reference = imagehash.phash(im.convert("L").resize((DCT_SIDE, DCT_SIDE), Image.Resampling.LANCZOS))
    assert to_hex(ours) == str(reference)


def test_hex_round_trip_and_bad_hex():
    for value in (0, 1, 2**63, 2**64 - 1, 0x0123456789ABCDEF):
        assert from_hex(to_hex(value)) == value and len(to_hex(value)) == 16
    for bad in ("", "abc", "zz" * 8, "0" * 17):
        with pytest.raises(HashError):
            from_hex(bad)


def test_luma_of_the_wrong_size_is_refused():
    with pytest.raises(HashError):
        phash_of_luma(np.zeros((8, 8)))


def test_vectorised_distances_equal_the_scalar_ones():
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 2**64, size=2000, dtype=np.uint64)
    query = int(rng.integers(0, 2**64, dtype=np.uint64))
    assert distances(stored, query).tolist() == [hamming(int(h), query) for h in stored]


def test_hash_sees_structure_not_noise():
    a, b = phash(images.scene(320, 240, 1)), phash(images.scene(320, 240, 1).resize((160, 120)))
    assert hamming(a, b) <= NEAR
    assert hamming(a, phash(images.scene(320, 240, 2))) > NEAR
