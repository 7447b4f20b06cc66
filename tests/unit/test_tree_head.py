"""Ed25519 signed tree heads: encoding, signing, tampering, JSON and key loading."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.integrity.tree_head import (
    SIGNING_DOMAIN,
    SignedTreeHead,
    TreeHeadFormatError,
    TreeHeadKeyError,
    TreeHeadSigner,
    generate_signing_key_pem,
    key_id_for,
    load_public_key,
    load_signing_key,
    load_signing_key_from_file,
    public_key_pem,
    tree_head_signing_input,
    verify_tree_head,
)

SEED = bytes(range(32))
OTHER_SEED = bytes(range(1, 33))
ROOT = hashlib.sha256(b"root").digest()
WHEN = datetime(2025, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(SEED)


@pytest.fixture(scope="module")
def signer(key: Ed25519PrivateKey) -> TreeHeadSigner:
    return TreeHeadSigner(key)


@pytest.fixture(scope="module")
def sth(signer: TreeHeadSigner) -> SignedTreeHead:
    return signer.sign(1234, ROOT, WHEN)


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


# -- the signed encoding ---------------------------------------------------------------------


def test_signed_bytes_follow_the_documented_layout(sth: SignedTreeHead) -> None:
    micros = 1738324800_123456
    expected = (
        b"referral-tree-head-v1\n"
        + (1234).to_bytes(8, "big")
        + ROOT
        + micros.to_bytes(8, "big", signed=True)
        + bytes([16])
        + sth.key_id.encode("ascii")
    )
    assert sth.signed_bytes() == expected
    assert len(expected) == 22 + 8 + 32 + 8 + 1 + 16
    assert expected.startswith(SIGNING_DOMAIN)


def test_signed_bytes_of_a_fixed_head_are_stable() -> None:
    encoded = tree_head_signing_input(
        2**64 - 1, bytes(32), datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "k"
    )
    assert encoded.hex() == (
        SIGNING_DOMAIN.hex() + "ff" * 8 + "00" * 32 + "ff" * 8 + "01" + b"k".hex()
    )


def test_key_id_is_sixteen_hex_of_the_public_key_hash(
    key: Ed25519PrivateKey, signer: TreeHeadSigner, sth: SignedTreeHead
) -> None:
    expected = hashlib.sha256(raw_public(key)).hexdigest()[:16]
    assert signer.key_id == key_id_for(key.public_key()) == sth.key_id == expected


def test_distinct_heads_have_distinct_signed_bytes(signer: TreeHeadSigner) -> None:
    heads = {
        tree_head_signing_input(size, root, when, key_id)
        for size in (0, 1, 256)
        for root in (bytes(32), ROOT)
        for when in (WHEN, WHEN + timedelta(microseconds=1))
        for key_id in ("a", "ab", signer.key_id)
    }
    assert len(heads) == 3 * 2 * 2 * 3


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ((-1, ROOT, WHEN, "k"), ValueError, "tree_size"),
        ((2**64, ROOT, WHEN, "k"), ValueError, "tree_size"),
        ((True, ROOT, WHEN, "k"), TypeError, "tree_size"),
        ((1, ROOT[:31], WHEN, "k"), ValueError, "root_hash"),
        ((1, ROOT.hex(), WHEN, "k"), TypeError, "root_hash"),
        ((1, ROOT, WHEN.replace(tzinfo=None), "k"), ValueError, "timezone"),
        ((1, ROOT, "2025-01-31T12:00:00Z", "k"), TypeError, "timestamp"),
        ((1, ROOT, WHEN, ""), ValueError, "key_id"),
        ((1, ROOT, WHEN, "k" * 256), ValueError, "key_id"),
        ((1, ROOT, WHEN, "clé"), ValueError, "key_id"),
        ((1, ROOT, WHEN, "a\nb"), ValueError, "key_id"),
    ],
)
def test_malformed_fields_are_refused(
    fields: tuple[object, object, object, object], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        tree_head_signing_input(*fields)  # type: ignore[arg-type]


# -- signing and verification ----------------------------------------------------------------


def test_sign_and_verify_round_trip(key: Ed25519PrivateKey, sth: SignedTreeHead) -> None:
    assert (sth.tree_size, sth.root_hash, sth.timestamp) == (1234, ROOT, WHEN)
    assert len(sth.signature) == 64
    assert verify_tree_head(sth, key.public_key())
    key.public_key().verify(sth.signature, sth.signed_bytes())  # raises if not valid


def test_non_utc_timestamps_are_normalised(signer: TreeHeadSigner, key: Ed25519PrivateKey) -> None:
    local = WHEN.astimezone(timezone(timedelta(hours=2)))
    head = signer.sign(1234, ROOT, local)
    assert head.timestamp.utcoffset() == timedelta(0)
    assert head.timestamp == WHEN
    assert head.signed_bytes() == signer.sign(1234, ROOT, WHEN).signed_bytes()
    assert verify_tree_head(head, key.public_key())


def test_a_naive_timestamp_cannot_be_signed(signer: TreeHeadSigner) -> None:
    with pytest.raises(ValueError, match="timezone"):
        signer.sign(1, ROOT, WHEN.replace(tzinfo=None))


@pytest.mark.parametrize(
    "change",
    [
        {"tree_size": 1235},
        {"tree_size": 1233},
        {"tree_size": 0},
        {"root_hash": bytes([ROOT[0] ^ 1]) + ROOT[1:]},
        {"root_hash": hashlib.sha256(b"other").digest()},
        {"timestamp": WHEN + timedelta(microseconds=1)},
        {"timestamp": WHEN - timedelta(days=1)},
        {"key_id": "0000000000000000"},
    ],
    ids=lambda change: next(iter(change)),
)
def test_changing_any_field_breaks_the_signature(
    key: Ed25519PrivateKey, sth: SignedTreeHead, change: dict[str, object]
) -> None:
    assert not verify_tree_head(dataclasses.replace(sth, **change), key.public_key())  # type: ignore[arg-type]


def test_changing_the_key_id_breaks_the_signature_even_for_that_key(
    key: Ed25519PrivateKey, sth: SignedTreeHead
) -> None:
    forged = dataclasses.replace(sth, key_id="ffffffffffffffff")
    assert not verify_tree_head(forged, key.public_key())
    # Even if a verifier ignored key ids, the key id is covered by the signature.
    with pytest.raises(InvalidSignature):
        key.public_key().verify(forged.signature, forged.signed_bytes())


@pytest.mark.parametrize("position", range(64))
def test_flipping_any_signature_byte_breaks_it(
    key: Ed25519PrivateKey, sth: SignedTreeHead, position: int
) -> None:
    signature = bytearray(sth.signature)
    signature[position] ^= 0x01
    tampered = dataclasses.replace(sth, signature=bytes(signature))
    assert not verify_tree_head(tampered, key.public_key())


def test_another_key_does_not_verify(sth: SignedTreeHead) -> None:
    other = Ed25519PrivateKey.from_private_bytes(OTHER_SEED)
    assert not verify_tree_head(sth, other.public_key())
    relabelled = dataclasses.replace(sth, key_id=key_id_for(other.public_key()))
    assert not verify_tree_head(relabelled, other.public_key())


def test_a_head_signed_by_another_key_does_not_verify(key: Ed25519PrivateKey) -> None:
    other = TreeHeadSigner(Ed25519PrivateKey.from_private_bytes(OTHER_SEED))
    forged = dataclasses.replace(other.sign(1234, ROOT, WHEN), key_id=key_id_for(key.public_key()))
    assert not verify_tree_head(forged, key.public_key())
    assert verify_tree_head(other.sign(1234, ROOT, WHEN), other.public_key)


def test_a_head_whose_key_id_does_not_name_the_key_is_refused(key: Ed25519PrivateKey) -> None:
    mislabelled_input = tree_head_signing_input(1234, ROOT, WHEN, "ffffffffffffffff")
    mislabelled = SignedTreeHead(1234, ROOT, WHEN, "ffffffffffffffff", key.sign(mislabelled_input))
    key.public_key().verify(mislabelled.signature, mislabelled.signed_bytes())  # signature ok
    assert not verify_tree_head(mislabelled, key.public_key())


def test_signature_must_be_64_bytes(sth: SignedTreeHead) -> None:
    with pytest.raises(ValueError, match="signature"):
        dataclasses.replace(sth, signature=sth.signature[:-1])


# -- JSON ------------------------------------------------------------------------------------


def test_json_round_trip(key: Ed25519PrivateKey, sth: SignedTreeHead) -> None:
    text = sth.to_json()
    parsed = SignedTreeHead.from_json(text)
    assert parsed == sth
    assert parsed.to_json() == text
    assert verify_tree_head(parsed, key.public_key())


def test_json_shape(sth: SignedTreeHead) -> None:
    data = json.loads(sth.to_json())
    assert data == {
        "tree_size": 1234,
        "root_hash": ROOT.hex(),
        "timestamp": "2025-01-31T12:00:00.123456Z",
        "key_id": sth.key_id,
        "signature": sth.signature.hex(),
    }


def test_json_timestamps_always_carry_microseconds(signer: TreeHeadSigner) -> None:
    head = signer.sign(1, ROOT, datetime(2025, 1, 31, 12, tzinfo=UTC))
    assert json.loads(head.to_json())["timestamp"] == "2025-01-31T12:00:00.000000Z"
    early = signer.sign(1, ROOT, datetime(9, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    assert json.loads(early.to_json())["timestamp"] == "0009-01-02T03:04:05.000006Z"


def test_json_with_a_tampered_field_parses_but_does_not_verify(
    key: Ed25519PrivateKey, sth: SignedTreeHead
) -> None:
    data = json.loads(sth.to_json())
    data["tree_size"] = 1233
    assert not verify_tree_head(SignedTreeHead.from_json(json.dumps(data)), key.public_key())


def _json_with(sth: SignedTreeHead, **changes: object) -> str:
    data = json.loads(sth.to_json())
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not ...})


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"tree_size": "1234"}, "tree_size"),
        ({"tree_size": True}, "tree_size"),
        ({"tree_size": -1}, "tree_size"),
        ({"root_hash": ROOT.hex().upper()}, "root_hash"),
        ({"root_hash": ROOT.hex()[:-1]}, "root_hash"),
        ({"root_hash": ROOT.hex()[:-2]}, "root_hash"),
        ({"signature": "zz" * 64}, "signature"),
        ({"timestamp": "2025-01-31T12:00:00"}, "offset"),
        ({"timestamp": "yesterday"}, "ISO 8601"),
        ({"timestamp": 1738324800}, "timestamp"),
        ({"key_id": 7}, "key_id"),
        ({"key_id": ...}, "keys"),
        ({"extra": 1}, "keys"),
    ],
)
def test_malformed_json_is_refused(
    sth: SignedTreeHead, changes: dict[str, object], match: str
) -> None:
    with pytest.raises(TreeHeadFormatError, match=match):
        SignedTreeHead.from_json(_json_with(sth, **changes))


@pytest.mark.parametrize("text", ["", "[]", "null", "{", '"head"'])
def test_json_that_is_not_an_object_is_refused(text: str) -> None:
    with pytest.raises(TreeHeadFormatError):
        SignedTreeHead.from_json(text)


@settings(max_examples=50, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=2**64 - 1),
    root=st.binary(min_size=32, max_size=32),
    when=st.datetimes(timezones=st.just(UTC)),
)
def test_any_head_round_trips_and_verifies(
    signer: TreeHeadSigner, size: int, root: bytes, when: datetime
) -> None:
    head = signer.sign(size, root, when)
    parsed = SignedTreeHead.from_json(head.to_json())
    assert parsed == head
    assert parsed.signed_bytes() == head.signed_bytes()
    assert verify_tree_head(parsed, signer.public_key)


# -- keys ------------------------------------------------------------------------------------


def test_generated_pem_loads_and_signs() -> None:
    pem = generate_signing_key_pem()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    key = load_signing_key(pem)
    head = TreeHeadSigner(key).sign(1, ROOT, WHEN)
    public = load_public_key(public_key_pem(key))
    assert verify_tree_head(head, public)
    assert generate_signing_key_pem() != pem


def test_public_key_pem_round_trips(key: Ed25519PrivateKey) -> None:
    pem = public_key_pem(key)
    assert pem.startswith("-----BEGIN PUBLIC KEY-----")
    assert raw_public(key) == load_public_key(pem).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )


@pytest.mark.parametrize(
    "encode",
    [
        lambda seed: seed.hex(),
        lambda seed: seed.hex().upper(),
        lambda seed: base64.b64encode(seed).decode(),
        lambda seed: base64.urlsafe_b64encode(seed).decode().rstrip("="),
        lambda seed: f"  {seed.hex()}\n",
        lambda seed: (
            Ed25519PrivateKey.from_private_bytes(seed)
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode()
        ),
    ],
    ids=["hex", "HEX", "base64", "base64url-unpadded", "hex-in-whitespace", "pem"],
)
def test_signing_key_loads_from_every_accepted_form(
    key: Ed25519PrivateKey, encode: object
) -> None:
    loaded = load_signing_key(encode(SEED))  # type: ignore[operator]
    assert raw_public(loaded) == raw_public(key)


def test_seed_with_dash_and_underscore_is_decoded_as_base64url() -> None:
    seed = bytes([0xFB, 0xFF] * 16)  # encodes with '-' and '_' in base64url
    text = base64.urlsafe_b64encode(seed).decode()
    assert "-" in text or "_" in text
    loaded = load_signing_key(text)
    assert raw_public(loaded) == raw_public(Ed25519PrivateKey.from_private_bytes(seed))


def _ec_pem() -> str:
    return (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def _encrypted_pem() -> str:
    return (
        Ed25519PrivateKey.from_private_bytes(SEED)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret-passphrase"),
        )
        .decode()
    )


BAD_KEYS = {
    "empty": "",
    "words": "correct horse battery staple",
    "short-hex": SEED.hex()[:-2],
    "long-hex": SEED.hex() + "00",
    "short-base64": base64.b64encode(SEED[:31]).decode(),
    "long-base64": base64.b64encode(SEED + b"\x00").decode(),
    "hex-with-junk": SEED.hex()[:-1] + "g",
    "broken-pem": "-----BEGIN PRIVATE KEY-----\nAAAA"
    + SEED.hex()
    + "\n-----END PRIVATE KEY-----\n",
}


@pytest.mark.parametrize("value", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_bad_signing_keys_raise_without_echoing_the_value(value: str) -> None:
    with pytest.raises(TreeHeadKeyError) as caught:
        load_signing_key(value)
    message = str(caught.value)
    assert message
    assert "\n" not in message
    assert SEED.hex()[:16] not in message.lower()
    if value.strip():
        assert value.strip() not in message
    # No chained exception that a traceback would print alongside.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_a_pem_of_another_algorithm_is_refused() -> None:
    with pytest.raises(TreeHeadKeyError, match="not Ed25519"):
        load_signing_key(_ec_pem())


def test_an_encrypted_pem_is_refused() -> None:
    with pytest.raises(TreeHeadKeyError, match="encrypted"):
        load_signing_key(_encrypted_pem())


def test_a_bad_public_key_is_refused(key: Ed25519PrivateKey) -> None:
    with pytest.raises(TreeHeadKeyError, match="public key"):
        load_public_key("not a key")
    ec_public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(TreeHeadKeyError, match="not an Ed25519"):
        load_public_key(ec_public)


def test_signing_key_loads_from_a_file(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    path = tmp_path / "tree-head.key"
    path.write_text(SEED.hex() + "\n", encoding="ascii")
    assert raw_public(load_signing_key_from_file(path)) == raw_public(key)
    assert raw_public(load_signing_key_from_file(str(path))) == raw_public(key)


def test_a_missing_or_bad_key_file_raises_a_key_error(tmp_path: Path) -> None:
    with pytest.raises(TreeHeadKeyError, match="could not be read"):
        load_signing_key_from_file(tmp_path / "absent.key")
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"\xff" * 32)
    with pytest.raises(TreeHeadKeyError, match="could not be read"):
        load_signing_key_from_file(binary)
    wrong = tmp_path / "wrong.key"
    wrong.write_text("nope", encoding="ascii")
    with pytest.raises(TreeHeadKeyError, match="neither PKCS8 PEM nor"):
        load_signing_key_from_file(wrong)


def test_wrong_key_types_raise_type_error(sth: SignedTreeHead) -> None:
    with pytest.raises(TypeError, match="Ed25519PrivateKey"):
        TreeHeadSigner(SEED)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Ed25519PublicKey"):
        verify_tree_head(sth, SEED)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text"):
        load_signing_key(SEED)  # type: ignore[arg-type]
