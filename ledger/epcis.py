"""A lot's history as a GS1 EPCIS 2.0 JSON-LD ``EPCISDocument``.

Mapping (one ObjectEvent per ledger entry; every event names the lot in ``quantityList``):

=================  =========  =======================  =============================================
ledger entry       action     bizStep                  carries
=================  =========  =======================  =============================================
``lot.start``      ADD        creating_class_instance  the lot's first start: disposition
                                                       ``active``, ``ilmd`` (lot, station)
``lot.start``      OBSERVE    arriving                 a later start at another station:
                                                       disposition ``in_progress``
``lot.end``        OBSERVE    inspecting               ``sensorElementList``: one element per point
                                                       with minValue/maxValue/meanValue/sDev/uom;
                                                       disposition ``conformant`` or
                                                       ``non_conformant`` from the lot-end checks;
                                                       ``eqc:checks``
``alarm``          OBSERVE    sensor_reporting         ``sensorReport`` with the value, and
                                                       ``exception: ALARM_CONDITION`` on activation
                                                       (ERROR_CONDITION for stale/no-data kinds)
``alarm.ack`` ...  OBSERVE    inspecting               ``eqc:acknowledgement`` (who, rule, comment,
                                                       the activation it acts on)
``node.start``     OBSERVE    (none)                   ``eqc:node``: the station's recording
``node.stop``                                          resumed/stopped inside the lot; a start
                                                       says how long the node was down
``correction``     (repeats the corrected entry's event with an ``errorDeclaration``)
=================  =========  =======================  =============================================

A station's missing ``lot.start`` (``lot.end``) is explained in ``eqc:missingStart``
(``eqc:missingEnd``) on the lot's event that is there, and in the document's
``eqc:stationVisits`` (one per station visit, with its start and end times).

Identifiers:

* The lot is a class-level identifier (``epcClass``). With the product's GTIN it is the GS1
  Digital Link ``https://id.gs1.org/01/<GTIN>/10/<lot>``; without one it is the private URN
  ``urn:edge-qc:lot:<lot>`` (percent-encoded), which names the lot honestly instead of
  inventing a GTIN.
* ``readPoint`` is ``urn:edge-qc:station:<node_id>:<station>`` and ``bizLocation``
  ``urn:edge-qc:site:<site>``: the node's own names (no GLN is configured on a gateway).
* ``eventID`` is ``urn:uuid:`` + a name-based UUID (v5) of the ledger entry id, so exporting
  twice yields the same ids. The entry id itself is in ``eqc:entryId`` (with ``eqc:feed`` and
  ``eqc:seq``) on every event, and the document lists every entry it was made from in
  ``eqc:ledgerEntries``: an auditor checks them with ``edge ledger verify``.

Extension fields use the prefix ``eqc`` bound to ``urn:edge-qc:`` in the document's
``@context``. Values become JSON numbers from the ledger's decimal strings.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from edge.ledger.query import StoredEntry, format_ts
from edge.ledger.trace import LotTrace, TraceEvent

__all__ = [
    "EPCIS_CONTEXT",
    "MEASUREMENT_TYPES",
    "UNITS",
    "UNMAPPED_TYPE",
    "epcis_document",
    "lot_class",
    "measurement_for_unit",
    "measurement_type_problems",
    "valid_gtin",
]

#: The normative EPCIS 2.0 JSON-LD context.
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
_EQC = "urn:edge-qc:"
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:edge-qc:ledger-entry")

#: sensorReport ``type`` for a unit without a GS1 measurement type (its unit text travels in
#: ``eqc:unit``); a private term, so it never claims a GS1 meaning it does not have.
UNMAPPED_TYPE = "eqc:MT-Unmapped"

#: Unit as written in point configs -> (GS1 CBV measurement type, UN/CEFACT Rec. 20 code).
UNITS: Mapping[str, tuple[str, str]] = {
    "°c": ("Temperature", "CEL"),
    "degc": ("Temperature", "CEL"),
    "c": ("Temperature", "CEL"),
    "cel": ("Temperature", "CEL"),
    "°f": ("Temperature", "FAH"),
    "k": ("Temperature", "KEL"),
    "kg": ("Mass", "KGM"),
    "g": ("Mass", "GRM"),
    "mg": ("Mass", "MGM"),
    "t": ("Mass", "TNE"),
    "lb": ("Mass", "LBR"),
    "bar": ("Pressure", "BAR"),
    "mbar": ("Pressure", "MBR"),
    "pa": ("Pressure", "PAL"),
    "hpa": ("Pressure", "A97"),
    "kpa": ("Pressure", "KPA"),
    "mpa": ("Pressure", "MPA"),
    "psi": ("Pressure", "PS"),
    "%rh": ("RelativeHumidity", "P1"),
    "m": ("Length", "MTR"),
    "cm": ("Length", "CMT"),
    "mm": ("Length", "MMT"),
    "l": ("Volume", "LTR"),
    "ml": ("Volume", "MLT"),
    "m3": ("Volume", "MTQ"),
    "m³": ("Volume", "MTQ"),
    "l/min": ("VolumeFlowRate", "L2"),
    "m3/h": ("VolumeFlowRate", "MQH"),
    "m/s": ("Speed", "MTS"),
    "km/h": ("Speed", "KMH"),
    "hz": ("Frequency", "HTZ"),
    "v": ("Voltage", "VLT"),
    "a": ("ElectricCurrent", "AMP"),
    "ma": ("ElectricCurrent", "4K"),
    "w": ("Power", "WTT"),
    "kw": ("Power", "KWT"),
    "kwh": ("Energy", "KWH"),
    "j": ("Energy", "JOU"),
    "s": ("Time", "SEC"),
    "min": ("Time", "MIN"),
    "h": ("Time", "HUR"),
    "n": ("Force", "NEW"),
    "nm": ("Torque", "NU"),
    "n·m": ("Torque", "NU"),
    "lx": ("Illuminance", "LUX"),
    "%": ("Dimensionless", "P1"),
    "ppm": ("Dimensionless", "59"),
}

#: The GS1 CBV 2.0 measurement types (``gs1:MT-<name>``), written as EPCIS 2.0 JSON-LD does.
MEASUREMENT_TYPES: frozenset[str] = frozenset(
    [
        "AbsoluteHumidity",
        "AbsorbedDose",
        "AbsorbedDoseRate",
        "Acceleration",
        "Radioactivity",
        "Altitude",
        "AmountOfSubstance",
        "AmountOfSubstancePerUnitVolume",
        "Angle",
        "AngularAcceleration",
        "AngularMomentum",
        "AngularVelocity",
        "Area",
        "Capacitance",
        "Conductance",
        "Conductivity",
        "Count",
        "Density",
        "Dimensionless",
        "DoseEquivalent",
        "DoseEquivalentRate",
        "DynamicViscosity",
        "ElectricCharge",
        "ElectricCurrent",
        "ElectricCurrentDensity",
        "ElectricFieldStrength",
        "Energy",
        "Exposure",
        "Force",
        "Frequency",
        "Illuminance",
        "Inductance",
        "Irradiance",
        "KinematicViscosity",
        "Length",
        "LinearMomentum",
        "Luminance",
        "LuminousFlux",
        "LuminousIntensity",
        "MagneticFlux",
        "MagneticFluxDensity",
        "MagneticVectorPotential",
        "Mass",
        "MassConcentration",
        "MassFlowRate",
        "MassPerAreaTime",
        "MemoryCapacity",
        "MolalityOfSolute",
        "MolarEnergy",
        "MolarMass",
        "MolarVolume",
        "Power",
        "Pressure",
        "RadiantFlux",
        "RadiantIntensity",
        "RelativeHumidity",
        "Resistance",
        "Resistivity",
        "SolidAngle",
        "SpecificVolume",
        "Speed",
        "SurfaceDensity",
        "SurfaceTension",
        "Temperature",
        "Time",
        "Torque",
        "Voltage",
        "Volume",
        "VolumeFlowRate",
        "VolumeFraction",
        "VolumetricFlux",
        "Wavenumber",
    ]
)

_ERROR_KINDS = frozenset({"stale", "nodata", "no_data", "comm_fail", "quality"})


def measurement_for_unit(unit: str) -> tuple[str, str] | None:
    """The (measurement type, UN/CEFACT code) for a point's unit text, or None if unknown."""
    return UNITS.get(unit.strip().lower())


def valid_gtin(gtin: str) -> bool:
    """True for a GTIN-14: 14 digits whose last is the GS1 mod-10 check digit of the others."""
    if len(gtin) != 14 or not gtin.isascii() or not gtin.isdigit():
        return False
    body = [int(c) for c in gtin[:-1]]
    # weights 3,1,3,... counted from the digit next to the check digit
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == int(gtin[-1])


def lot_class(lot: str, gtin: str | None = None) -> str:
    """The lot as an EPCIS class-level identifier (see the module docs)."""
    if gtin:
        return f"https://id.gs1.org/01/{gtin}/10/{quote(lot, safe='')}"
    return f"{_EQC}lot:{quote(lot, safe='')}"


def _number(text: object) -> float | None:
    if text is None or isinstance(text, bool):
        return None
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        return None
    return float(value) if value.is_finite() else None


def _uri_part(text: str) -> str:
    return quote(text, safe="") or "-"


def _report(type_and_code: tuple[str, str] | None, unit: str) -> dict[str, Any]:
    if type_and_code is None:
        return {"type": UNMAPPED_TYPE, "eqc:unit": unit}
    return {"type": type_and_code[0], "uom": type_and_code[1]}


class _Builder:
    def __init__(self, trace: LotTrace, gtin: str | None) -> None:
        self.trace = trace
        self.epc_class = lot_class(trace.lot, gtin)
        self.used: set[str] = set()
        self.created = False  # the lot's first lot.start creates it; later ones are arrivals
        self.events: dict[str, dict[str, Any]] = {}
        self.starts = {v.end.id: v.start for v in trace.visits if v.end and v.start}
        # Alarms and acks do not name their station; the lot's visit on that feed does.
        self.station_of = {v.station.feed: v.name for v in trace.visits if v.name}
        # Why a visit's start (end) is missing travels on the end (start) that is there.
        self.missing_end = {v.start.id: v.end_note for v in trace.visits if v.start and v.end_note}
        self.missing_start = {
            v.end.id: v.start_note for v in trace.visits if v.end and v.start_note
        }

    def base(self, event: TraceEvent, action: str, biz_step: str | None) -> dict[str, Any]:
        entry, station = event.entry, event.station
        node = station.node_id or station.feed[:16]
        where = str(entry.body.get("station", "") or self.station_of.get(entry.feed, ""))
        read_point = f"{_EQC}station:{_uri_part(node)}:{_uri_part(where)}"
        doc: dict[str, Any] = {
            "type": "ObjectEvent",
            "eventTime": entry.ts,
            "eventTimeZoneOffset": "+00:00",
            "eventID": f"urn:uuid:{uuid.uuid5(_ID_NAMESPACE, entry.id)}",
            "action": action,
            **({"bizStep": biz_step} if biz_step is not None else {}),
            "quantityList": [{"epcClass": self.epc_class}],
            "readPoint": {"id": read_point if where else f"{_EQC}node:{_uri_part(node)}"},
        }
        if station.site:
            doc["bizLocation"] = {"id": f"{_EQC}site:{_uri_part(station.site)}"}
        doc.update({"eqc:entryId": entry.id, "eqc:feed": entry.feed, "eqc:seq": entry.seq})
        self.used.add(entry.id)
        return doc

    def rule_set(self, entry: StoredEntry) -> dict[str, str] | None:
        chosen = None
        for rule_set in self.trace.rule_sets:
            if rule_set.entry.feed == entry.feed and rule_set.entry.ts <= entry.ts:
                chosen = rule_set
        if chosen is None:
            return None
        self.used.add(chosen.entry.id)
        return {"hash": chosen.hash, "entryId": chosen.entry.id}

    def lot_end(self, event: TraceEvent) -> dict[str, Any]:
        entry, body = event.entry, event.entry.body
        doc = self.base(event, "OBSERVE", "inspecting")
        checks = [c for c in body.get("checks") or () if isinstance(c, dict)]
        if checks:
            ok = all(c.get("passed") is True for c in checks)
            doc["disposition"] = "conformant" if ok else "non_conformant"
            doc["eqc:checks"] = checks
        start = self.starts.get(entry.id)
        elements = []
        aggregates = body.get("aggregates")
        for point, agg in sorted((aggregates if isinstance(aggregates, dict) else {}).items()):
            if not isinstance(agg, dict):
                continue
            unit = str(agg.get("unit", ""))
            report = _report(measurement_for_unit(unit), unit)
            for ours, theirs in (
                ("min", "minValue"),
                ("max", "maxValue"),
                ("mean", "meanValue"),
                ("std", "sDev"),
            ):
                number = _number(agg.get(ours))
                if number is not None:
                    report[theirs] = number
            if isinstance(agg.get("count"), int):
                report["eqc:count"] = agg["count"]
            metadata: dict[str, Any] = {"endTime": entry.ts, "eqc:point": point}
            if start is not None:
                metadata["startTime"] = start.ts
            elements.append({"sensorMetadata": metadata, "sensorReport": [report]})
        if elements:
            doc["sensorElementList"] = elements
        return doc

    def alarm(self, event: TraceEvent) -> dict[str, Any]:
        body = event.entry.body
        doc = self.base(event, "OBSERVE", "sensor_reporting")
        fields = (
            "rule",
            "kind",
            "point",
            "event",
            "from",
            "to",
            "value",
            "limit",
            "unit",
            "severity",
            "message",
        )
        doc["eqc:alarm"] = {k: body[k] for k in fields if k in body}
        unit = str(body.get("unit", ""))
        report = _report(measurement_for_unit(unit), unit)
        value = _number(body.get("value"))
        if value is not None:
            report["value"] = value
        if body.get("event") == "activated":
            kind = str(body.get("kind", "")).lower()
            report["exception"] = "ERROR_CONDITION" if kind in _ERROR_KINDS else "ALARM_CONDITION"
        if value is not None or "exception" in report:
            metadata = {"time": event.entry.ts, "eqc:point": str(body.get("point", ""))}
            doc["sensorElementList"] = [{"sensorMetadata": metadata, "sensorReport": [report]}]
        return doc

    def event(self, event: TraceEvent) -> dict[str, Any] | None:
        entry = event.entry
        match entry.type:
            case "lot.start" if not self.created:
                doc = self.base(event, "ADD", "creating_class_instance")
                doc["disposition"] = "active"
                doc["ilmd"] = {
                    "eqc:lot": self.trace.lot,
                    "eqc:station": str(entry.body.get("station", "")),
                }
                self.created = True
            case "lot.start":
                doc = self.base(event, "OBSERVE", "arriving")
                doc["disposition"] = "in_progress"
            case "lot.end":
                doc = self.lot_end(event)
            case "alarm":
                doc = self.alarm(event)
            case "alarm.ack" | "alarm.shelve" | "alarm.unshelve":
                doc = self.base(event, "OBSERVE", "inspecting")
                ack = {k: entry.body[k] for k in ("rule", "comment", "until") if k in entry.body}
                if event.refers_to:
                    ack["activationEntryId"] = event.refers_to
                doc["eqc:acknowledgement"] = {"action": entry.type, "by": entry.actor, **ack}
            case "node.start" | "node.stop":
                # No CBV business step is a gateway restart: the event says only that the
                # station's recording stopped or resumed while the lot was there.
                doc = self.base(event, "OBSERVE", None)
                node = {"event": "start" if entry.type == "node.start" else "stop"}
                for key in ("reason", "version", "config_hash"):
                    if isinstance(entry.body.get(key), str):
                        node[key] = entry.body[key]
                if event.note:
                    node["note"] = event.note
                doc["eqc:node"] = node
            case _:
                return None
        if entry.id in self.missing_end:
            doc["eqc:missingEnd"] = self.missing_end[entry.id]
        if entry.id in self.missing_start:
            doc["eqc:missingStart"] = self.missing_start[entry.id]
        rule_set = self.rule_set(entry)
        if rule_set is not None:
            doc["eqc:ruleSet"] = rule_set
        return doc

    def correction(self, event: TraceEvent) -> list[dict[str, Any]]:
        """Repeat each corrected event with an ``errorDeclaration`` (EPCIS's way to retract)."""
        entry = event.entry
        out = []
        targets = set(entry.refs)
        if isinstance(entry.body.get("corrects"), str):
            targets.add(entry.body["corrects"])
        for target in sorted(targets):
            original = self.events.get(target)
            if original is None:
                continue
            retracted = dict(original)
            retracted["errorDeclaration"] = {
                "declarationTime": entry.ts,
                "reason": "incorrect_data",
                "eqc:correctionEntryId": entry.id,
                "eqc:reason": str(entry.body.get("reason", "")),
            }
            out.append(retracted)
            self.used.add(entry.id)
        return out


def epcis_document(trace: LotTrace, *, now: datetime, gtin: str | None = None) -> dict[str, Any]:
    """Build the EPCIS 2.0 document for ``trace``.

    Args:
        trace: the lot's trace (:func:`edge.ledger.trace.trace_lot`).
        now: the document's ``creationDate``.
        gtin: the product's GTIN-14, if known (changes the lot identifier, see module docs).

    Returns:
        A JSON-ready ``EPCISDocument`` mapping.
    """
    builder = _Builder(trace, gtin)
    events: list[dict[str, Any]] = []
    for event in trace.events:
        if event.entry.type == "correction":
            events.extend(builder.correction(event))
            continue
        doc = builder.event(event)
        if doc is not None:
            builder.events[event.entry.id] = doc
            events.append(doc)
    used = sorted(builder.used)
    return {
        "@context": [EPCIS_CONTEXT, {"eqc": _EQC}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": format_ts(now),
        "id": f"urn:uuid:{uuid.uuid5(_ID_NAMESPACE, trace.lot + ':' + ','.join(used))}",
        "eqc:lot": trace.lot,
        "eqc:ledgerEntries": used,
        "eqc:stationVisits": [
            {
                "station": v.name,
                "node": v.station.node_id,
                "feed": v.station.feed,
                "start": v.start.ts if v.start else None,
                "end": v.end.ts if v.end else None,
                **({"missingStart": v.start_note} if v.start_note else {}),
                **({"missingEnd": v.end_note} if v.end_note else {}),
            }
            for v in trace.visits
        ],
        "epcisBody": {"eventList": events},
    }


def measurement_type_problems(document: Mapping[str, Any]) -> list[str]:
    """Check the measurement types, which GS1's schema accepts as any string.

    Every ``sensorReport.type`` must be a CBV measurement type (or :data:`UNMAPPED_TYPE`), and
    its ``uom`` one this module maps to that type.

    Returns:
        One line per problem (``event 2 element 0 report 0: type 'Temprature' is not ...``).
    """
    allowed: dict[str, set[str]] = {}
    for type_name, code in UNITS.values():
        allowed.setdefault(type_name, set()).add(code)
    problems = []
    events = document.get("epcisBody", {}).get("eventList", [])
    for i, event in enumerate(events):
        for j, element in enumerate(event.get("sensorElementList") or ()):
            for k, report in enumerate(element.get("sensorReport") or ()):
                where = f"event {i} element {j} report {k}"
                kind = report.get("type")
                if kind == UNMAPPED_TYPE:
                    continue
                if kind not in MEASUREMENT_TYPES:
                    problems.append(f"{where}: type {kind!r} is not a GS1 CBV measurement type")
                elif "uom" in report and report["uom"] not in allowed.get(kind, set()):
                    problems.append(f"{where}: uom {report['uom']!r} does not measure {kind}")
    return problems
