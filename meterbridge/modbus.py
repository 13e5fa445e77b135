"""Reading meters over Modbus RTU: serial RS-485 or RTU frames over TCP, with counted retries.

pymodbus's own retry loop is switched off (``retries=0``) and done here instead, so every
timeout, CRC or framing error is counted per bus and meter in Prometheus and logged before the
next attempt.  A meter that still fails after the retries raises :class:`MeterUnavailable`; the
caller turns that into an UNAVAILABLE record, never into a made-up value.

One lock per bus: RS-485 is half duplex and a converter serves one request at a time, so two
meters on one line are read one after the other.

An RTU answer carries no transaction id: it names only the slave and the function, and a read's
answer its byte count, not the address asked for.  pymodbus 3.16 takes the first complete frame
after a request as its answer and checks only the slave id, so an answer that arrives just after
a timeout becomes the answer to the *next* request (a meter's voltage recorded as its power;
issue 12).  So after every timeout or mismatched answer the bus is **drained**: the next request
waits until nothing has arrived for one timeout (at most ``DRAIN_WINDOWS`` of them, after which
the connection is reopened), and an answer is accepted only if its slave id, function code and
register count are the request's.  pymodbus drops a frame that arrives with no request pending.
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
from gridchain.meterbridge.profiles import (
    Measurement,
    Profile,
    ReadBlock,
    SetpointSpec,
    decode,
    decode_setpoint_words,
    plan_reads,
)
from gridchain.protocol.errors import GridchainError

log = structlog.get_logger("meterbridge.modbus")

#: After a timeout, wait at most this many quiet-timeouts for late answers before reopening.
DRAIN_WINDOWS = 4


class MeterUnavailable(GridchainError):  # noqa: N818 - a state, not a bug
    code = "meter_unavailable"


class SetpointWriteError(GridchainError):
    """A setpoint the device did not take: no answer, an exception, or a different read-back."""

    code = "setpoint_not_taken"


class MismatchedAnswerError(ModbusIOException):
    """An answer whose slave id, function code or register count is not the request's."""


class BusClient:
    """One bus (a serial line or a converter's TCP port) and the meters' requests on it."""

    def __init__(self, bus: SerialBus | TcpBus, metrics: BridgeMetrics) -> None:
        self.bus = bus
        self.metrics = metrics
        self._lock = asyncio.Lock()
        #: Bumped by every chunk of bytes received: the drain waits until it stops moving.
        self._received = 0
        #: A timeout or a wrong answer happened: drain before the next request.
        self._dirty = False
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
                trace_packet=self._trace,
            )
        else:
            self._client = AsyncModbusTcpClient(
                bus.host,
                port=bus.port,
                framer=FramerType.RTU,
                timeout=bus.timeout_s,
                retries=0,
                reconnect_delay=0,
                trace_packet=self._trace,
            )

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._received += 1
        return data

    async def _drain(self) -> None:
        """Wait until the bus has been quiet for one timeout, so a late answer is dropped.

        pymodbus discards a frame that arrives while no request is pending; waiting out the
        late answers here keeps them from meeting the next request.  A bus that keeps talking
        beyond ``DRAIN_WINDOWS`` timeouts is closed and reopened.
        """
        self._dirty = False
        for _ in range(DRAIN_WINDOWS):
            before = self._received
            await asyncio.sleep(self.bus.timeout_s)
            if self._received == before:
                return
        log.warning("modbus_bus_not_quiet", bus=self.bus.name)
        self._client.close()

    async def close(self) -> None:
        self._client.close()

    async def _ensure_connected(self) -> None:
        if not self._client.connected and not await self._client.connect():
            raise ModbusIOException(f"cannot open bus {self.bus.name}")

    async def _read_block(self, slave_id: int, block: ReadBlock) -> list[int]:
        if self._dirty:
            await self._drain()
        await self._ensure_connected()
        call: Any = (
            self._client.read_holding_registers
            if block.function_code == 3
            else self._client.read_input_registers
        )
        response = await call(block.address, count=block.count, device_id=slave_id)
        if response.dev_id != slave_id:
            raise MismatchedAnswerError(f"asked slave {slave_id}, slave {response.dev_id} answered")
        if response.isError():
            raise ModbusException(f"exception response {response}")
        if response.function_code != block.function_code:
            raise MismatchedAnswerError(
                f"asked function {block.function_code}, got {response.function_code}"
            )
        registers: list[int] = list(response.registers)
        if len(registers) != block.count:
            raise MismatchedAnswerError(f"asked {block.count} registers, got {len(registers)}")
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

    async def write_setpoint(
        self, device: str, slave_id: int, spec: SetpointSpec, watts: int, revert_s: int | None
    ) -> int:
        """Write a power setpoint (and the revert timer, if the device has one), read it back.

        Returns the setpoint the device holds afterwards; a device that answers with an
        exception, does not answer, or reads back another value is a :class:`SetpointWriteError`
        (the caller logs and counts it and writes again next time).  Not retried here: the
        controller writes every interval anyway, and a write must not be repeated blindly
        after a timeout whose answer may still come.
        """
        words = spec.encode_w(watts)
        async with self._lock:
            try:
                if self._dirty:
                    await self._drain()
                await self._ensure_connected()
                if spec.revert_timeout_address is not None and revert_s is not None:
                    await self._write(slave_id, spec.revert_timeout_address, [min(revert_s, 65535)])
                await self._write(slave_id, spec.address, words)
                block = ReadBlock(3, spec.address, spec.type.words)
                back = decode_setpoint_words(spec, await self._read_block(slave_id, block))
            except (ModbusException, TimeoutError, OSError) as exc:
                self._dirty = True
                self.metrics.modbus_requests.labels(self.bus.name, "error").inc()
                raise SetpointWriteError(
                    f"{device} (slave {slave_id} on {self.bus.name}): setpoint {watts} W: {exc}"
                ) from exc
        self.metrics.modbus_requests.labels(self.bus.name, "ok").inc()
        if back != watts:
            raise SetpointWriteError(f"{device}: wrote {watts} W, the device holds {back} W")
        return back

    async def read_setpoint(self, device: str, slave_id: int, spec: SetpointSpec) -> int:
        """The setpoint the device holds now, W (import positive)."""
        async with self._lock:
            try:
                await self._ensure_connected()
                block = ReadBlock(3, spec.address, spec.type.words)
                return decode_setpoint_words(spec, await self._read_block(slave_id, block))
            except (ModbusException, TimeoutError, OSError) as exc:
                self._dirty = True
                raise SetpointWriteError(f"{device}: cannot read its setpoint: {exc}") from exc

    async def _write(self, slave_id: int, address: int, words: list[int]) -> None:
        response = await self._client.write_registers(address, words, device_id=slave_id)
        if response.dev_id != slave_id:
            raise MismatchedAnswerError(f"asked slave {slave_id}, slave {response.dev_id} answered")
        if response.isError():
            raise ModbusException(f"exception response {response}")

    async def _read_with_retries(self, meter_id: str, slave_id: int, block: ReadBlock) -> list[int]:
        attempts = self.bus.retries + 1
        last = ""
        for attempt in range(attempts):
            outcome = "error"
            try:
                registers = await self._read_block(slave_id, block)
            except MismatchedAnswerError as exc:
                outcome, last = "mismatch", str(exc)
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
            # a late or stray answer may still be on its way: let it pass before the next request
            self._dirty = outcome in ("timeout", "mismatch", "crc")
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
