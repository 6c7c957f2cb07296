"""Issue 18's job as a Node-RED flow: the peer the resource bench measures edge-qc beside.

The flow is the hand-optimised one of the issue's table: node-red-contrib-modbus reading the
slave's 20 holding and 20 input registers in two block reads per cycle (one client, one
``modbus-read`` node per block, both at the poll rate), a function node per block scaling the
registers as the points are configured (0.1), the limit rule with hysteresis (p00 above 60,
back below 55) in the holding block's function with its state in the node's context, and each
transition published at QoS 1 by an ``mqtt out`` node. Node-RED runs with its defaults (the
editor's HTTP server on a free loopback port, as a user's would).

Node-RED and node-red-contrib-modbus come from tools/nodered/package.json (pinned versions;
``make bench-tools`` installs them into tools/nodered/node_modules).
"""

from __future__ import annotations

import json
from pathlib import Path

NODE_RED_DIR = Path(__file__).resolve().parents[2] / "tools" / "nodered"
RED_JS = NODE_RED_DIR / "node_modules" / "node-red" / "red.js"

_RULE = """
const v = msg.payload[0];
const scaled = msg.payload.slice(1).map((r) => r * 0.1);
flow.set('holding', scaled);
let state = context.get('state') || 'normal';
if (state === 'normal' && v > 60) { state = 'active'; }
else if (state === 'active' && v < 55) { state = 'normal'; }
else { return null; }
context.set('state', state);
return {topic: 'nodered/job40-gw/alarms/p00-high', qos: 1,
        payload: JSON.stringify({rule: 'p00-high', point: 'p00', to: state, value: v,
                                 limit: 60, ts: new Date().toISOString()})};
"""
_SCALE = """
flow.set('input', msg.payload.map((r) => r * 0.1));
return null;
"""


def write_flow(user_dir: Path, sim_port: int, broker_port: int, *, poll_ms: int) -> Path:
    """The flow file for the job polled every ``poll_ms``; returns its path (in ``user_dir``)."""
    user_dir.mkdir(parents=True, exist_ok=True)

    def read(node_id: str, data_type: str, start: int, wire: str) -> dict[str, object]:
        return {
            "id": node_id, "type": "modbus-read", "z": "job", "name": node_id, "topic": "",
            "showStatusActivities": False, "logIOActivities": False, "showErrors": False,
            "unitid": "1", "dataType": data_type, "adr": str(start), "quantity": "20",
            "rate": str(poll_ms), "rateUnit": "ms", "delayOnStart": False,
            "startDelayTime": "", "server": "cfg.plc", "useIOFile": False, "ioFile": "",
            "useIOForPayload": False, "emptyMsgOnFail": False, "x": 100, "y": 100,
            "wires": [[wire], []],
        }  # fmt: skip

    def function(node_id: str, code: str, wires: list[list[str]]) -> dict[str, object]:
        return {"id": node_id, "type": "function", "z": "job", "name": node_id, "func": code,
                "outputs": 1, "timeout": 0, "noerr": 0, "initialize": "", "finalize": "",
                "libs": [], "x": 300, "y": 100, "wires": wires}  # fmt: skip

    # Ids never equal another property's value: Node-RED takes such a value for a reference to
    # that config node (a client named as its id is "a circular config node dependency").
    flow = [
        {"id": "job", "type": "tab", "label": "job40", "disabled": False, "info": ""},
        {"id": "cfg.plc", "type": "modbus-client", "name": "plc", "clienttype": "tcp",
         "bufferCommands": True, "stateLogEnabled": False, "queueLogEnabled": False,
         "failureLogEnabled": False, "tcpHost": "127.0.0.1", "tcpPort": str(sim_port),
         "tcpType": "DEFAULT", "serialPort": "/dev/ttyUSB", "serialType": "RTU-BUFFERD",
         "serialBaudrate": "9600", "serialDatabits": "8", "serialStopbits": "1",
         "serialParity": "none", "serialConnectionDelay": "100",
         "serialAsciiResponseStartDelimiter": "0x3A", "unit_id": "1", "commandDelay": "1",
         "clientTimeout": "500", "reconnectOnTimeout": True, "reconnectTimeout": "2000",
         "parallelUnitIdsAllowed": True},
        {"id": "cfg.broker", "type": "mqtt-broker", "name": "broker", "broker": "127.0.0.1",
         "port": str(broker_port), "clientid": "", "autoConnect": True, "usetls": False,
         "protocolVersion": "4", "keepalive": "30", "cleansession": True,
         "birthTopic": "", "closeTopic": "", "willTopic": ""},
        read("holding", "HoldingRegister", 0, "rule"),
        read("input", "InputRegister", 20, "scale"),
        function("rule", _RULE, [["alerts"]]),
        function("scale", _SCALE, [[]]),
        {"id": "alerts", "type": "mqtt out", "z": "job", "name": "alerts", "topic": "",
         "qos": "1", "retain": "false", "broker": "cfg.broker", "x": 500, "y": 100, "wires": []},
    ]  # fmt: skip
    path = user_dir / "flows.json"
    path.write_text(json.dumps(flow, indent=1))
    return path
