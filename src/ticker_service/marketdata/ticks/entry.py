"""One instrument's latest tick as it travels inside an instance: the packet, decoded at most once per mode.

The same entry is handed to every client of the account that wants the instrument, so a tick is
rendered as JSON once per mode it is asked in, however many sockets receive it: `/ws/ticks`
joins the cached encoded ticks into each socket's message instead of encoding them again per socket.
"""

from __future__ import annotations

from ticker_service.marketdata.packets import Mode, packet_token
from ticker_service.marketdata.ticks.tick_json import encode_packet
from ticker_service.marketdata.ticks.wire import at_mode, packet_mode


class TickEntry:
    __slots__ = ("_encoded", "mode", "packet", "token")

    def __init__(self, packet: bytes) -> None:
        self.packet = packet
        self.token = packet_token(packet)
        self.mode: Mode = packet_mode(packet)
        self._encoded: dict[str, bytes] = {}

    def packet_for(self, mode: Mode) -> bytes:
        return at_mode(self.packet, mode)

    def encoded_for(self, mode: Mode) -> bytes:
        """The tick as JSON for a subscriber in `mode` (what the packet carries, at most that mode),
        encoded once for every socket that gets this tick."""
        cached = self._encoded.get(mode)
        if cached is None:
            cached = self._encoded[mode] = encode_packet(self.packet_for(mode))
        return cached
