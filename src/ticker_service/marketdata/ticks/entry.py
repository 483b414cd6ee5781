"""One instrument's latest tick as it travels inside an instance: the packet, decoded at most once per mode.

The same entry is handed to every client of the account that wants the instrument, so a tick is
parsed and rendered as JSON once per mode it is asked in, however many sockets receive it: `/ws/ticks`
joins the cached encoded ticks into each socket's message instead of encoding them again per socket.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ticker_service.marketdata.packets import Mode, parse_packet
from ticker_service.marketdata.ticks.wire import at_mode, packet_mode, packet_token

_encoder = msgspec.json.Encoder()


class TickEntry:
    __slots__ = ("_encoded", "_json", "mode", "packet", "token")

    def __init__(self, packet: bytes) -> None:
        self.packet = packet
        self.token = packet_token(packet)
        self.mode: Mode = packet_mode(packet)
        self._json: dict[str, dict[str, Any]] = {}
        self._encoded: dict[str, bytes] = {}

    def packet_for(self, mode: Mode) -> bytes:
        return at_mode(self.packet, mode)

    def json_for(self, mode: Mode) -> dict[str, Any]:
        """Kite's tick shape for a subscriber in `mode` (what the packet carries, at most that mode).

        Beside Kite's documented `timestamp`, a full tick also carries it as `exchange_timestamp`,
        pykiteconnect's name, so clients written against either find it.
        """
        cached = self._json.get(mode)
        if cached is None:
            cached = parse_packet(self.packet_for(mode)).to_dict()
            if "timestamp" in cached:
                cached["exchange_timestamp"] = cached["timestamp"]
            self._json[mode] = cached
        return cached

    def encoded_for(self, mode: Mode) -> bytes:
        """`json_for(mode)` as JSON bytes, encoded once for every socket that gets this tick."""
        cached = self._encoded.get(mode)
        if cached is None:
            cached = self._encoded[mode] = _encoder.encode(self.json_for(mode))
        return cached
