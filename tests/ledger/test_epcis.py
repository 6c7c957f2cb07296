"""GS1 EPCIS 2.0 export, validated against GS1's own JSON Schema (shared/vectors/epcis/)."""

from __future__ import annotations

import copy
import json
import sqlite3
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import ledger_scenario as sc
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator

from edge.cli import main
from edge.ledger.epcis import (
    UNMAPPED_TYPE,
    epcis_document,
    lot_class,
    measurement_for_unit,
    measurement_type_problems,
)
from edge.ledger.query import open_ledger_db
from edge.ledger.trace import trace_lot

# CI runs from a clean clone with ``shared`` beside it, as in the workspace.
VECTORS = Path(__file__).resolve().parents[3] / "shared" / "vectors" / "epcis"
SCHEMA = json.loads((VECTORS / "EPCIS-JSON-Schema.json").read_text())
# Format checks on (date-time, uri) need rfc3339-validator and rfc3986-validator (dev deps);
# without them "eventTime": "yesterday" would pass.
VALIDATOR = Draft7Validator(SCHEMA, format_checker=Draft7Validator.FORMAT_CHECKER)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def schema_errors(document: Any) -> list[str]:
    """THE validation helper: every GS1 schema violation in ``document``, one line each."""
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in VALIDATOR.iter_errors(document)
    ]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return sc.build(tmp_path_factory.mktemp("epcis") / "ledger.db")


@pytest.fixture(scope="module")
def document(scenario: Any) -> dict[str, Any]:
    conn = open_ledger_db(scenario.db)
    return epcis_document(trace_lot(conn, sc.LOT), now=NOW)


def events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = doc["epcisBody"]["eventList"]
    return result


def test_format_checkers_are_installed() -> None:
    checker = Draft7Validator.FORMAT_CHECKER
    assert not checker.conforms("yesterday", "date-time")
    assert not checker.conforms("not a uri", "uri")


@pytest.mark.parametrize(
    "example", sorted((VECTORS / "examples").glob("*.jsonld")), ids=lambda p: p.name
)
def test_gs1_examples_validate(example: Path) -> None:
    assert schema_errors(json.loads(example.read_text())) == []


def test_export_validates(document: dict[str, Any]) -> None:
    assert schema_errors(document) == []
    assert measurement_type_problems(document) == []
    # survives a trip through JSON text (what the CLI writes)
    assert schema_errors(json.loads(json.dumps(document))) == []


def _drop_event_time(doc: dict[str, Any]) -> None:
    del events(doc)[0]["eventTime"]


def _action_as_number(doc: dict[str, Any]) -> None:
    events(doc)[0]["action"] = 1


def _bad_time(doc: dict[str, Any]) -> None:
    events(doc)[1]["eventTime"] = "yesterday afternoon"


def _no_lot(doc: dict[str, Any]) -> None:
    del events(doc)[0]["quantityList"]


def _bad_uom(doc: dict[str, Any]) -> None:
    events(doc)[0]["quantityList"][0]["uom"] = "kilograms"


def _ilmd_on_observe(doc: dict[str, Any]) -> None:
    events(doc)[1]["ilmd"] = {"eqc:x": 1}


def _bare_extension_key(doc: dict[str, Any]) -> None:
    events(doc)[0]["myField"] = "extension keys must be URIs"


def _no_context(doc: dict[str, Any]) -> None:
    del doc["@context"]


def _mean_as_string(doc: dict[str, Any]) -> None:
    end = next(e for e in events(doc) if "sensorElementList" in e and e["bizStep"] == "inspecting")
    end["sensorElementList"][0]["sensorReport"][0]["meanValue"] = "500.12"


@pytest.mark.parametrize(
    "breakage",
    [
        _drop_event_time,
        _action_as_number,
        _bad_time,
        _no_lot,
        _bad_uom,
        _ilmd_on_observe,
        _bare_extension_key,
        _no_context,
        _mean_as_string,
    ],
)
def test_broken_documents_are_rejected(document: dict[str, Any], breakage: Any) -> None:
    broken = copy.deepcopy(document)
    breakage(broken)
    assert schema_errors(broken) != []


def test_lot_records_are_object_events(document: dict[str, Any]) -> None:
    got = [(e["type"], e["action"], e["bizStep"], e.get("disposition")) for e in events(document)]
    assert got == [
        ("ObjectEvent", "ADD", "creating_class_instance", "active"),  # lot start at the filler
        ("ObjectEvent", "OBSERVE", "sensor_reporting", None),  # alarm activated
        ("ObjectEvent", "OBSERVE", "inspecting", None),  # alice's acknowledgement
        ("ObjectEvent", "OBSERVE", "sensor_reporting", None),  # alarm cleared
        ("ObjectEvent", "OBSERVE", "inspecting", "conformant"),  # lot end at the filler
        ("ObjectEvent", "OBSERVE", "arriving", "in_progress"),  # lot start at the packer
        ("ObjectEvent", "OBSERVE", "inspecting", "non_conformant"),  # lot end at the packer
        ("ObjectEvent", "OBSERVE", "inspecting", "non_conformant"),  # ... retracted by correction
    ]
    assert {e["quantityList"][0]["epcClass"] for e in events(document)} == {
        "urn:edge-qc:lot:L-2611-A"
    }
    assert events(document)[0]["readPoint"]["id"] == "urn:edge-qc:station:filler-gw:filler-1"
    assert events(document)[5]["readPoint"]["id"] == "urn:edge-qc:station:packer-gw:packer-1"


def test_lot_end_sensor_elements_carry_the_aggregates(
    document: dict[str, Any], scenario: Any
) -> None:
    end = events(document)[4]
    reports = {el["sensorMetadata"]["eqc:point"]: el for el in end["sensorElementList"]}
    weight = reports["fill_weight"]["sensorReport"][0]
    assert (weight["type"], weight["uom"]) == ("Mass", "GRM")
    assert Decimal(str(weight["meanValue"])) == Decimal("500.12")
    assert Decimal(str(weight["minValue"])) == Decimal("498.2")
    assert Decimal(str(weight["maxValue"])) == Decimal("502.0")
    assert Decimal(str(weight["sDev"])) == Decimal("0.81")
    assert weight["eqc:count"] == 120
    temp = reports["product_temp"]["sensorReport"][0]
    assert (temp["type"], temp["uom"]) == ("Temperature", "CEL")
    meta = reports["fill_weight"]["sensorMetadata"]
    assert (meta["startTime"], meta["endTime"]) == (
        scenario.entries["a_lot_start"].ts,
        scenario.entries["a_lot_end"].ts,
    )
    assert end["eqc:ruleSet"]["hash"] == "2" * 64


def test_alarm_activation_is_a_sensor_exception(document: dict[str, Any]) -> None:
    on, off = events(document)[1], events(document)[3]
    report = on["sensorElementList"][0]["sensorReport"][0]
    assert report == {"type": "Mass", "uom": "GRM", "value": 498.2, "exception": "ALARM_CONDITION"}
    assert "exception" not in off["sensorElementList"][0]["sensorReport"][0]
    assert on["eqc:alarm"]["rule"] == "fill_weight_low"
    ack = events(document)[2]
    assert ack["eqc:acknowledgement"]["by"] == "alice"


def test_correction_is_an_error_declaration(document: dict[str, Any], scenario: Any) -> None:
    original, retracted = events(document)[6], events(document)[7]
    assert retracted["eventID"] == original["eventID"]
    assert retracted["errorDeclaration"]["declarationTime"] == scenario.entries["b_correction"].ts
    assert (
        retracted["errorDeclaration"]["eqc:correctionEntryId"]
        == scenario.entries["b_correction"].id
    )
    assert "errorDeclaration" not in original


def test_document_lists_its_ledger_entries(document: dict[str, Any], scenario: Any) -> None:
    listed = document["eqc:ledgerEntries"]
    conn = sqlite3.connect(scenario.db)
    for entry_id in listed:
        assert conn.execute("SELECT 1 FROM entries WHERE id = ?", (entry_id,)).fetchone()
    used = {e["eqc:entryId"] for e in events(document)}
    used |= {e["eqc:ruleSet"]["entryId"] for e in events(document) if "eqc:ruleSet" in e}
    used |= {
        e["errorDeclaration"]["eqc:correctionEntryId"]
        for e in events(document)
        if "errorDeclaration" in e
    }
    assert set(listed) == used
    assert scenario.entries["a_late_ack"].id not in listed
    # what an auditor does with the list: verify the ledger they were taken from
    from edge.ledger.verify import verify_db

    report = verify_db(conn)
    assert report.ok, report.problems


def test_export_is_reproducible(scenario: Any, document: dict[str, Any]) -> None:
    conn = open_ledger_db(scenario.db)
    again = epcis_document(trace_lot(conn, sc.LOT), now=NOW)
    assert again == document
    ids = [e["eventID"] for e in events(document)[:7]]
    assert len(set(ids)) == 7


def test_measurement_types_are_gs1_types() -> None:
    gs1 = set(SCHEMA["definitions"]["measurementType"]["anyOf"][1]["enum"])
    from edge.ledger.epcis import MEASUREMENT_TYPES, UNITS

    assert gs1 == MEASUREMENT_TYPES
    assert {t for t, _ in UNITS.values()} <= gs1
    # a few mappings checked against UN/CEFACT Rec. 20 by hand
    assert measurement_for_unit("°C") == ("Temperature", "CEL")
    assert measurement_for_unit(" kg ") == ("Mass", "KGM")
    assert measurement_for_unit("bar") == ("Pressure", "BAR")
    assert measurement_for_unit("%RH") == ("RelativeHumidity", "P1")
    assert measurement_for_unit("furlongs") is None


def test_measurement_check_catches_what_the_schema_allows(document: dict[str, Any]) -> None:
    broken = copy.deepcopy(document)
    end = events(broken)[4]
    end["sensorElementList"][0]["sensorReport"][0]["type"] = "urn:example:Temprature"
    end["sensorElementList"][1]["sensorReport"][0]["uom"] = "KGM"  # product_temp in kg
    assert schema_errors(broken) == []  # GS1's schema accepts both ...
    problems = measurement_type_problems(broken)
    assert len(problems) == 2  # ... the separate check does not
    assert "is not a GS1 CBV measurement type" in problems[0]
    assert "uom 'KGM' does not measure Temperature" in problems[1]


def test_unknown_unit_is_marked_not_guessed(tmp_path: Path) -> None:
    from edge.ledger.keys import NodeKey
    from edge.ledger.store import Ledger

    db = tmp_path / "ledger.db"
    with Ledger.open(db, NodeKey.generate()) as led:
        led.append("lot.start", {"lot": "P", "station": "s"}, ts=sc.T0, lots=["P"])
        agg = {"count": 3, "mean": "7.1", "min": "7.0", "max": "7.2", "std": "0.1", "unit": "pH"}
        led.append(
            "lot.end",
            {"lot": "P", "station": "s", "aggregates": {"acidity": agg}, "checks": []},
            ts=sc.T0 + 5,
            lots=["P"],
        )
        led.commit(now=sc.T0 + 6)
    doc = epcis_document(trace_lot(open_ledger_db(db), "P"), now=NOW, gtin="09506000134352")
    report = events(doc)[1]["sensorElementList"][0]["sensorReport"][0]
    assert report["type"] == UNMAPPED_TYPE
    assert report["eqc:unit"] == "pH"
    assert "uom" not in report
    assert "disposition" not in events(doc)[1]  # no checks: no verdict
    assert schema_errors(doc) == []
    assert measurement_type_problems(doc) == []
    assert (
        events(doc)[0]["quantityList"][0]["epcClass"] == "https://id.gs1.org/01/09506000134352/10/P"
    )


def test_lot_class_encodes_the_lot() -> None:
    assert lot_class("A/B 7") == "urn:edge-qc:lot:A%2FB%207"
    assert (
        lot_class("A/B 7", "09506000134352") == "https://id.gs1.org/01/09506000134352/10/A%2FB%207"
    )


def test_cli_export_epcis(scenario: Any, tmp_path: Path) -> None:
    out = tmp_path / "lot.jsonld"
    args = [
        "ledger",
        "export",
        "--lot",
        sc.LOT,
        "--format",
        "epcis",
        "--db",
        str(scenario.db),
        "-o",
        str(out),
        "--gtin",
        "09506000134352",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert schema_errors(doc) == []
    assert doc["eqc:lot"] == sc.LOT
    assert events(doc)[0]["quantityList"][0]["epcClass"].startswith(
        "https://id.gs1.org/01/09506000134352/10/"
    )


def test_cli_export_rejects_bad_gtin(scenario: Any) -> None:
    args = [
        "ledger",
        "export",
        "--lot",
        sc.LOT,
        "--format",
        "epcis",
        "--db",
        str(scenario.db),
        "--gtin",
        "123",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.output.strip() == (
        "edge: --gtin: '123' is not a GTIN-14 (14 digits ending in a check digit)"
    )


def test_gtin_check_digit() -> None:
    from edge.ledger.epcis import valid_gtin

    assert valid_gtin("09506000134352")  # GS1's Digital Link example GTIN
    assert valid_gtin("00614141123452")  # GS1's check digit example (GTIN-12 614141123452)
    assert not valid_gtin("09506000134353")
    assert not valid_gtin("0950600013435")
    assert not valid_gtin("０９５０６０００１３４３５２")


_UNIT_CHOICES = [
    "°C",
    "kg",
    "g",
    "bar",
    "%RH",
    "l/min",
    "pH",
    "",
    "furlong/fortnight",
    "KG",
    " mm ",
]
# NUL is refused in lot codes and names (see test_entry); every other character must round-trip.
_names = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=12,
)
_decimals = st.decimals(
    allow_nan=False, allow_infinity=False, places=3, min_value=-1e6, max_value=1e6
)
_values = st.one_of(st.none(), _decimals.map(str))


@settings(max_examples=25, deadline=None)
@given(
    lot=_names,
    node=_names,
    site=_names,
    station=_names,
    points=st.dictionaries(
        _names,
        st.tuples(
            st.integers(0, 10**6),
            _values,
            _values,
            _values,
            _values,
            st.sampled_from(_UNIT_CHOICES),
        ),
        max_size=3,
    ),
    checks=st.lists(st.booleans(), max_size=3),
    alarm=st.tuples(
        st.sampled_from(["activated", "cleared", "acknowledged", "shelved"]),
        _values,
        st.sampled_from(_UNIT_CHOICES),
        st.sampled_from(["limit", "stale", "rate"]),
    ),
    gtin=st.sampled_from([None, "09506000134352"]),
)
def test_any_recorded_lot_exports_a_valid_document(
    lot: str,
    node: str,
    site: str,
    station: str,
    points: dict[str, Any],
    checks: list[bool],
    alarm: tuple[str, str | None, str, str],
    gtin: str | None,
) -> None:
    from edge.ledger.keys import NodeKey
    from edge.ledger.store import Ledger

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ledger.db"
        with Ledger.open(db, NodeKey.generate()) as led:
            led.append(
                "node.start",
                {"node_id": node, "site": site, "version": "1", "config_hash": "0" * 64},
                ts=sc.T0,
            )
            led.append("rules.change", {"hash": "1" * 64, "files": [], "rules": []}, ts=sc.T0 + 1)
            led.append("lot.start", {"lot": lot, "station": station}, ts=sc.T0 + 2, lots=[lot])
            event, value, unit, kind = alarm
            on = led.append(
                "alarm",
                {
                    "rule": "r",
                    "kind": kind,
                    "point": "p",
                    "event": event,
                    "from": "a",
                    "to": "b",
                    "value": value,
                    "limit": None,
                    "unit": unit,
                    "severity": "low",
                    "message": "m",
                },
                ts=sc.T0 + 3,
                lots=[lot],
            )
            led.append("alarm.ack", {"rule": "r", "comment": "ok"}, ts=sc.T0 + 4, actor="u")
            aggregates = {
                point: {"count": n, "mean": mean, "min": lo, "max": hi, "std": sd, "unit": u}
                for point, (n, mean, lo, hi, sd, u) in points.items()
            }
            end = led.append(
                "lot.end",
                {
                    "lot": lot,
                    "station": station,
                    "aggregates": aggregates,
                    "checks": [
                        {"rule": "c", "statistic": "mean", "value": "1", "limit": "2", "passed": ok}
                        for ok in checks
                    ],
                },
                ts=sc.T0 + 5,
                lots=[lot],
            )
            led.append(
                "correction", {"reason": "x", "corrects": end.id}, ts=sc.T0 + 6, refs=[end.id]
            )
            led.commit(now=sc.T0 + 7)
        conn = open_ledger_db(db)
        doc = epcis_document(trace_lot(conn, lot), now=NOW, gtin=gtin)
        conn.close()
    assert schema_errors(json.loads(json.dumps(doc))) == []
    assert measurement_type_problems(doc) == []
    assert on.id in doc["eqc:ledgerEntries"]
    assert end.id in doc["eqc:ledgerEntries"]
    kinds = [(e["action"], e["bizStep"]) for e in events(doc)]
    assert kinds[0] == ("ADD", "creating_class_instance")
    assert len(events(doc)) == 5  # start, alarm, ack, end, end retracted
