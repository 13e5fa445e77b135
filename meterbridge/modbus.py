"""Reading meters over Modbus RTU: serial RS-485 or RTU frames over TCP, with counted retries.

pymodbus's own retry loop is switched off (``retries=0``) and done here instead, so every
timeout, CRC or framing error is counted per bus and meter in Prometheus and logged before the
next attempt.  A meter that still fails after the retries raises :class:`MeterUnavailable`; the
caller turns that into an UNAVAILABLE record, never into a made-up value.

One lock per bus: RS-485 is half duplex and a converter serves one request at a time, so two
meters on one line are read one after the other.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from gridchain.meterbridge.config import SerialBus, TcpBus
from gridchain.meterbridge.metrics import BridgeMetrics
from gridchain.meterbridge.profiles import Measurement, Profile, ReadBlock, decode, plan_reads
from gridchain.protocol.errors import GridchainError

log = structlog.get_logger("meterbridge.modbus")


class MeterUnavailable(GridchainError):  # noqa: N818 - a state, not a bug
    code = "meter_unavailable"


class BusClient:
    """One bus (a serial line or a converter's TCP port) and the meters' requests on it."""

    def __init__(self, bus: SerialBus | TcpBus, metrics: BridgeMetrics) -> None:
        self.bus = bus
        self.metrics = metrics
        self._lock = asyncio.Lock()
        self._client: AsyncModbusSerialClient | AsyncModbusTcpClient
        if isinstance(bus, SerialBus):
            self._client = AsyncModbusSerialClient(
                bus.port,
                framer=FramerType.RTU,
                baudrate=bus.baudrate,
                bytesize=bus.bytesize,
                parity=bus.parity,
                stopbits=bus.stopbits,
                timeout=bus.timeout_s,
                retries=0,
                reconnect_delay=0,
            )
        else:
            self._client = AsyncModbusTcpClient(
                bus.host,
                port=bus.port,
                framer=FramerType.RTU,
                timeout=bus.timeout_s,
                retries=0,
                reconnect_delay=0,
            )

    async def close(self) -> None:
        self._client.close()

    async def _ensure_connected(self) -> None:
        if not self._client.connected and not await self._client.connect():
            raise ModbusIOException(f"cannot open bus {self.bus.name}")

    async def _read_block(self, slave_id: int, block: ReadBlock) -> list[int]:
        await self._ensure_connected()
        call: Any = (
            self._client.read_holding_registers
            if block.function_code == 3
            else self._client.read_input_registers
        )
        response = await call(block.address, count=block.count, device_id=slave_id)
        if response.isError():
            raise ModbusException(f"exception response {response}")
        registers: list[int] = list(response.registers)
        if len(registers) != block.count:
            raise ModbusIOException(f"asked {block.count} registers, got {len(registers)}")
        return registers

    async def read_meter(self, meter_id: str, slave_id: int, profile: Profile) -> Measurement:
        """Read every block of the profile's plan (each with retries) and decode it."""
        words: dict[int, int] = {}
        async with self._lock:
            for block in plan_reads(profile):
                registers = await self._read_with_retries(meter_id, slave_id, block)
                words.update(
                    zip(range(block.address, block.address + block.count), registers, strict=True)
                )
        return decode(profile, words)

    async def _read_with_retries(self, meter_id: str, slave_id: int, block: ReadBlock) -> list[int]:
        attempts = self.bus.retries + 1
        last = ""
        for attempt in range(attempts):
            outcome = "error"
            try:
                registers = await self._read_block(slave_id, block)
            except ModbusIOException as exc:
                # pymodbus reports both a silent slave and a frame with a bad CRC (dropped by
                # the framer, so the answer never completes) as an I/O error after the timeout.
                outcome, last = "timeout", str(exc)
            except ModbusException as exc:
                text = str(exc)
                outcome = "crc" if "crc" in text.lower() else "exception"
                last = text
            except (TimeoutError, OSError) as exc:
                outcome, last = "timeout", repr(exc)
            else:
                self.metrics.modbus_requests.labels(self.bus.name, "ok").inc()
                return registers
            self.metrics.modbus_requests.labels(self.bus.name, outcome).inc()
            log.warning(
                "modbus_read_failed",
                bus=self.bus.name,
                meter=meter_id,
                slave_id=slave_id,
                address=block.address,
                count=block.count,
                attempt=attempt + 1,
                of=attempts,
                outcome=outcome,
                error=last,
            )
            if attempt + 1 < attempts:
                self.metrics.modbus_retries.labels(self.bus.name, meter_id).inc()
        raise MeterUnavailable(
            f"meter {meter_id} (slave {slave_id} on {self.bus.name}): {attempts} attempts failed,"
            f" last: {last}"
        )
