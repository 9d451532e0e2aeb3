"""The packaged fingerprint database: every entry is sourced, known values map to the right
product and version, unknown values stay unknown, and malformed data files fail loudly."""

from __future__ import annotations

from pathlib import Path

import pynetdicom
import pytest

from dicomguard.knowledge.fingerprint import (
    FingerprintDBError,
    load_database,
    parse_database,
)

DB = load_database()

# (class UID, version name, max PDU) -> (product, version, confidence, rule id).
# Each example is a value the cited source produces (see fingerprints.toml) or one measured here.
KNOWN = [
    # DCMTK: measured on Debian DCMTK 3.6.7 storescp/dcmqrscp and Orthanc 1.10.1.
    (
        ("1.2.276.0.7230010.3.0.3.6.7", "OFFIS_DCMTK_367", 16384),
        ("DCMTK", "3.6.7", "exact", "dcmtk"),
    ),
    (
        ("1.2.276.0.7230010.3.0.3.6.2", "OFFIS_DCMTK_362", None),
        ("DCMTK", "3.6.2", "exact", "dcmtk"),
    ),
    (
        ("1.2.276.0.7230010.3.0.3.7.0", "OFFIS_DCMTK_370", None),
        ("DCMTK", "3.7.0", "exact", "dcmtk"),
    ),
    # Two-digit patch level: the class UID keeps the dots, so it wins over the name.
    (
        ("1.2.276.0.7230010.3.0.3.6.10", "OFFIS_DCMTK_3610", None),
        ("DCMTK", "3.6.10", "exact", "dcmtk"),
    ),
    (
        ("1.2.276.0.7230010.3.0.3.1.1", "OFFIS-DCMTK-311", None),
        ("DCMTK", "3.1.1", "exact", "dcmtk-legacy"),
    ),
    # A DCMTK-based product that renamed itself: only the UID prefix says DCMTK.
    (
        ("1.2.276.0.7230010.3.0.3.6.4", "MYPACS_2_1", None),
        ("DCMTK", "3.6.4", "prefix", "dcmtk-uid-only"),
    ),
    # pynetdicom: measured 3.0.4 here; older ones from pynetdicom/__init__.py history and docs.
    (
        ("1.2.826.0.1.3680043.9.3811.3.0.4", "PYNETDICOM_304", 16382),
        ("pynetdicom", "3.0.4", "exact", "pynetdicom"),
    ),
    (
        ("1.2.826.0.1.3680043.9.3811.2.0.2", "PYNETDICOM_202", None),
        ("pynetdicom", "2.0.2", "exact", "pynetdicom"),
    ),
    (
        ("1.2.826.0.1.3680043.9.3811.1.5.6", "PYNETDICOM_156", None),
        ("pynetdicom", "1.5.6", "exact", "pynetdicom"),
    ),
    (
        ("1.2.826.0.1.3680043.9.3811.0.9.1", "PYNETDICOM3_091", None),
        ("pynetdicom3", "0.9.1", "exact", "pynetdicom3"),
    ),
    (
        ("1.2.826.0.1.3680043.9.3811.2.1.0", "MY_SCP", None),
        ("pynetdicom", "2.1.0", "prefix", "pynetdicom-uid-only"),
    ),
    # dcm4che: 3.x/5.x library, legacy 1.x/2.x.
    (("1.2.40.0.13.1.3", "dcm4che-5.31.0", None), ("dcm4che", "5.31.0", "exact", "dcm4che3")),
    (("1.2.40.0.13.1.3", "dcm4che-3.3.7", None), ("dcm4che", "3.3.7", "exact", "dcm4che3")),
    (("1.2.40.0.13.1.3", "ARCHIVE", None), ("dcm4che", None, "exact", "dcm4che3-uid-only")),
    (("1.2.40.0.13.1.1", "dcm4che-2.0", None), ("dcm4che", "2.0", "exact", "dcm4che-legacy")),
    (
        ("1.2.40.0.13.1.1", "DCM4CHEE_2_14", None),
        ("dcm4che", None, "exact", "dcm4che-legacy-uid-only"),
    ),
    # Conquest: version.h values for several platforms.
    (
        ("1.2.826.0.1.3680043.2.135.1066.101", "1.5.0/WIN32", None),
        ("Conquest DICOM server", "1.5.0", "exact", "conquest"),
    ),
    (
        ("1.2.826.0.1.3680043.2.135.1066.101", "1.4.19/OTHER", None),
        ("Conquest DICOM server", "1.4.19", "exact", "conquest"),
    ),
    (
        ("1.2.826.0.1.3680043.2.135.1066.101", "1.4.16/OTHER", None),
        ("Conquest DICOM server", "1.4.16", "exact", "conquest"),
    ),
    # GDCM, fo-dicom, ClearCanvas.
    (
        ("1.2.826.0.1.3680043.2.1143.107.104.103.115.2.8.4", "GDCM 2.8.4", None),
        ("GDCM", "2.8.4", "exact", "gdcm"),
    ),
    (
        ("1.2.826.0.1.3680043.2.1143.107.104.103.115.3.0.10.111.124.113", "GDCM 3.0.10", None),
        ("GDCM", "3.0.10", "exact", "gdcm"),
    ),
    (("1.3.6.1.4.1.30071.8", "fo-dicom 4.0.0", None), ("fo-dicom", "4.0.0", "exact", "fo-dicom")),
    (("1.3.6.1.4.1.30071.8", "fo-dicom 5.1.2", None), ("fo-dicom", "5.1.2", "exact", "fo-dicom")),
    (("1.3.6.1.4.1.30071.8", "MIG STORE", None), ("fo-dicom", None, "exact", "fo-dicom-uid-only")),
    (("1.3.6.1.4.1.25403.1.1.1", "Dicom 0.1", None), ("ClearCanvas", None, "exact", "clearcanvas")),
]


@pytest.mark.parametrize(("announced", "expected"), KNOWN, ids=[f"{e[3]}:{a[1]}" for a, e in KNOWN])
def test_known_values_map_to_product_and_version(announced, expected):
    fp = DB.match(*announced)
    assert (fp.product, fp.product_version, fp.confidence, fp.rule_id) == expected
    assert fp.honeypot is False


def test_every_entry_names_its_source():
    for rule in DB.rules:
        assert rule.sources, rule.id
        for source in rule.sources:
            assert len(source.strip()) > 10, (rule.id, source)


def test_required_products_are_covered():
    products = {rule.product for rule in DB.rules}
    for name in ("DCMTK", "pynetdicom", "dcm4che", "Conquest DICOM server", "GDCM", "fo-dicom"):
        assert name in products


def test_orthanc_is_recorded_as_sending_dcmtk_values():
    fp = DB.match("1.2.276.0.7230010.3.0.3.6.7", "OFFIS_DCMTK_367", 16384)
    assert "Orthanc" in fp.embedded_in
    assert fp.notes is not None and "Orthanc" in fp.notes


def test_installed_pynetdicom_constants_match():
    """Whatever pynetdicom is installed, its own constants must fingerprint to itself."""
    fp = DB.match(
        pynetdicom.PYNETDICOM_IMPLEMENTATION_UID, pynetdicom.PYNETDICOM_IMPLEMENTATION_VERSION
    )
    assert fp.product == "pynetdicom"
    assert fp.product_version == ".".join(pynetdicom.__version__.split(".")[:3])


@pytest.mark.parametrize(
    ("announced", "rule_id"),
    [
        (("1.2.276.0.7230010.3.0.3.6.1", "OSIRIX001", 16382), "dicomhawk-osirix-profile"),
        (("1.2.840.113619.6.96", "GE_PACS_REV_24", 16382), "dicomhawk-persona-ge-ct"),
        (("1.3.12.2.1107.5.2", "syngo CT VA48A", 16382), "dicomhawk-persona-siemens-ct"),
        (("1.3.46.670589.11", "PHILIPS_MR_56.1", 16382), "dicomhawk-persona-philips-mr"),
        ((None, None, 4194304), "dicompot"),
    ],
)
def test_honeypots_are_flagged(announced, rule_id):
    fp = DB.match(*announced)
    assert fp.rule_id == rule_id
    assert fp.honeypot is True


def test_honeypot_osirix_profile_beats_the_dcmtk_prefix_rule():
    # Same class UID as a real DCMTK 3.6.1, but DCMTK would never say OSIRIX001.
    real = DB.match("1.2.276.0.7230010.3.0.3.6.1", "OFFIS_DCMTK_361")
    decoy = DB.match("1.2.276.0.7230010.3.0.3.6.1", "OSIRIX001")
    assert (real.product, real.product_version, real.honeypot) == ("DCMTK", "3.6.1", False)
    assert decoy.honeypot is True


def test_dicompot_heuristic_needs_both_missing_uid_and_its_pdu_size():
    assert DB.match(None, None, 4194304).confidence == "heuristic"
    assert DB.match(None, None, 16384).product is None
    assert DB.match("1.2.3.4", None, 4194304).product is None


@pytest.mark.parametrize(
    "announced",
    [
        (None, None, None),
        ("", "", None),
        ("1.2.3.4.5", "SOMETHING_1", 16384),
        ("1.2.276.0.7230010.3", "OFFIS_DCMTK_367", None),  # root alone is not the class UID form
        ("1.2.826.0.1.3680043.9.381", "PYNETDICOM_304", None),  # near miss on the prefix
        (None, "PYNETDICOM_304", None),  # a name alone is not enough for prefix-bound rules
        ("1.2.40.0.13.1.2", "dcm4che-5.0.0", None),
    ],
)
def test_unknown_values_give_no_product(announced):
    fp = DB.match(*announced)
    assert fp.product is None
    assert fp.product_version is None
    assert fp.confidence == "unknown"
    assert fp.rule_id is None


def test_wire_padding_is_ignored():
    fp = DB.match("1.2.276.0.7230010.3.0.3.6.7\x00", "OFFIS_DCMTK_367 ", None)
    assert (fp.product, fp.product_version) == ("DCMTK", "3.6.7")


def test_load_database_is_cached_and_accepts_a_path(tmp_path: Path):
    assert load_database() is load_database()
    f = tmp_path / "fp.toml"
    f.write_text(
        'schema_version = 1\n[[fingerprint]]\nid = "x"\nproduct = "X"\nsource = "test file"\n'
        '[fingerprint.match]\nclass_uid = "1.2.3"\n'
    )
    db = load_database(f)
    assert db is load_database(f)
    assert db.match("1.2.3", None).product == "X"


_GOOD_RULE = """
[[fingerprint]]
id = "x"
product = "X"
source = "somewhere real"
{extra}
[fingerprint.match]
{match}
"""


def _doc(match: str = 'class_uid = "1.2.3"', extra: str = "", head: str = "schema_version = 1"):
    return head + "\n" + _GOOD_RULE.format(match=match, extra=extra)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("schema_version = [", "not valid TOML"),
        (_doc(head="schema_version = 2"), "schema_version"),
        ("schema_version = 1\n", "at least one [[fingerprint]]"),
        (_doc().replace('source = "somewhere real"\n', ""), "'source' is required"),
        (_doc(extra='sauce = "typo"'), "unknown keys"),
        (_doc(match='class_uid_prefx = "1.2."'), "unknown keys"),
        (_doc(match=""), "non-empty [fingerprint.match]"),
        (_doc(match="version_name_regex = '(unclosed'"), "bad version_name_regex"),
        (_doc(match='class_uid = "1.2"\nclass_uid_prefix = "1.2."'), "only one of"),
        (_doc(extra='version_from = ["class_uid_suffix"]'), "needs match.class_uid_prefix"),
        (_doc(extra='version_from = ["version_name"]'), "needs match.version_name_regex"),
        (
            _doc(match="version_name_regex = 'X_\\d+'", extra='version_from = ["version_name"]'),
            "capture group",
        ),
        (
            _doc(
                match="version_name_regex = 'X_(?P<a>\\d)'",
                extra='version_from = ["version_name"]\nversion_format = "{a}.{b}"',
            ),
            "not in the regex",
        ),
        (_doc(extra='version_from = ["banner"]'), "not one of"),
        (_doc(match="max_pdu = -1"), "max_pdu"),
        (_doc() + _GOOD_RULE.format(match='class_uid = "9"', extra=""), "duplicate id"),
        (_doc() + '[[product]]\nname = "X"\n[[product.release]]\nreleased = 2020\n', "'version'"),
        (
            _doc()
            + '[[product]]\nname = "X"\n[[product.release]]\nversion = "1"\n'
            + 'released = "x"\n',
            "year or a date",
        ),
    ],
)
def test_malformed_files_are_rejected_with_a_clear_message(text, message):
    with pytest.raises(FingerprintDBError) as excinfo:
        parse_database(text, origin="t.toml")
    assert message in str(excinfo.value)
    assert str(excinfo.value).startswith("t.toml")


def test_product_metadata_section_is_parsed():
    text = _doc() + (
        '[[product]]\nname = "X"\n[[product.release]]\nversion = "1.0"\nreleased = 2020\n'
        'end_of_life = 2023-06-30\ncves = ["CVE-2000-0001"]\nsource = "vendor advisory"\n'
    )
    db = parse_database(text)
    info = db.product("X")
    assert info is not None
    release = info.release("1.0")
    assert release is not None
    assert release.released == 2020
    assert release.cves == ("CVE-2000-0001",)
    assert db.product("Y") is None


@pytest.mark.parametrize(
    ("uid", "name", "product", "version"),
    [
        # Enet4/dicom-rs ul/src/lib.rs (0.8.0) and object/src/lib.rs (0.8.1)
        ("2.25.156227610253341005307660858504280353500", "DICOM-rs 0.8.0", "DICOM-rs", "0.8.0"),
        ("2.25.137038125948464847900039011591283709926", "DICOM-rs 0.3", "DICOM-rs", "0.3"),
        # PantelisGeorgiadis/dcmjs-dimse src/Constants.js
        ("1.3.6.1.4.1.41293.8", "DCMJS-DIMSE-V0.1", "dcmjs-dimse", None),
        # suyashkumar/dicom constants/constants.go (grailbio/go-netdicom)
        ("1.2.826.0.1.3680043.9.7133.1.1", "GODICOM_1_1", "go-netdicom", None),
        # fo-dicom/fo-dicom-samples#100 (a Sante server's AC in a public log)
        ("1.2.300.0.7230010.3", "SANTESOFT/2.0.00", "Sante DICOM server", "2.0.00"),
        # com/pixelmed/dicom/VersionAndConstants.java
        ("1.3.6.1.4.1.5962.99.2", "PIXELMEDJAVA001", "PixelMed", None),
        # kristianvalind/go-netdicom uid.go
        ("1.2.826.0.1.3680043.10.786.1.1", "GONETDICOM_1_1", "go-netdicom (kristianvalind fork)",
         None),
    ],
)
def test_toolkits_with_public_source_are_named(uid, name, product, version) -> None:
    fp = load_database().match(uid, name, 16384)
    assert (fp.product, fp.product_version) == (product, version)
