"""`accelctl bench`: the driver core's numbers, measured in one run against one endpoint.

Everything is measured against a simulator daemon running in a *separate process* (as a kernel
driver would be), in the same run as its baselines, so the ratios mean something on any machine:

- ``sync_latency_us``: ``execute()`` of a small command, p50/p99, interrupt and poll mode;
- ``throughput_cmds_per_s``: small commands in batches of 32 (one doorbell each), interrupt mode;
- ``ioctl_baseline_cmds_per_s``: the same commands, one control-socket request each (PASSTHRU);
- ``dma_write_gbs`` / ``dma_read_gbs``: 1 MiB and 64 MiB transfers from / to a registered buffer;
- ``memcpy_gbs``: a plain copy between two pre-faulted buffers of the same sizes;
- ``platform``: the floors under the latencies, measured in the same run (``floors.py``): a
  shared-memory round trip between two spinning processes and the cost of waking a sleeping CPU
  through an eventfd, plus the CPU time the hypervisor stole meanwhile.

These VMs change speed by 2-5x within minutes, so latency, throughput and the ioctl baseline are
measured in ``ROUNDS`` interleaved rounds: every measure sees the same fast and slow phases, and
the reported numbers are over all rounds (pooled samples, summed commands and time).
"""

from __future__ import annotations

import mmap
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelctl.protocol import abi
from accelctl.driver import commands as cmds
from accelctl.bench.floors import measure_floors, percentile
from accelctl.driver.session import Session
from accelctl.errors import DeviceNotFoundError, DriverError

if TYPE_CHECKING:
    from accelctl.machine import Machine

TARGETS = {
    "throughput_vs_ioctl_ratio_min": 4.0,
    "dma_64mib_vs_memcpy_ratio_min": 0.6,
    "poll_p50_us_max": 5.0,
    "interrupt_p50_us_max": 30.0,
    "throughput_cmds_per_s_min": 300_000,
}
SIZES = {"1MiB": 1 << 20, "64MiB": 64 << 20}
ROUNDS = 5


def _small_command() -> cmds.Command:
    # A 64-byte FILL: a real device-memory command with no host data, so it measures the queue
    # path (submit, doorbell, device fetch/execute/post, interrupt, reap), not a copy.
    return cmds.fill(0, 64, 0xA5A5A5A5)


def latency_samples(session: Session, iterations: int, warmup: int = 200) -> list[float]:
    """``execute()`` round trips of a small command, in microseconds."""
    q = session.queue
    cmd = _small_command()
    for _ in range(min(warmup, iterations)):
        q.execute(cmd)
    clock = time.perf_counter_ns
    samples = []
    for _ in range(iterations):
        t0 = clock()
        q.execute(cmd)
        samples.append((clock() - t0) / 1000)
    return samples


def summarize_latency(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50": round(percentile(ordered, 0.50), 2), "p99": round(percentile(ordered, 0.99), 2),
            "samples": len(ordered)}


def _cpu_seconds(pid: int | None) -> float | None:
    """User+system CPU time of a process (the daemon), from /proc; None when unreadable."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def measure_throughput(session: Session, seconds: float, batch: int = 32, inflight_batches: int = 2,
                       daemon_pid: int | None = None) -> dict[str, Any]:
    """Keep ``inflight_batches`` batches of ``batch`` in flight; each batch = one doorbell.

    Two batches in flight is the sweet spot on two cores: the device works on one while the host
    reaps and refills the other; deeper queues only make both sides wait in longer steps."""
    q = session.create_qpair(depth=max(256, batch * inflight_batches * 2))
    cmd = _small_command()
    done = [0]
    failed = [0]

    def on_done(req: Any) -> None:
        # Only commands the device completed successfully count toward the rate.
        cpl = req.completion
        if cpl is not None and cpl.ok:
            done[0] += 1
        else:
            failed[0] += 1

    batch_cmds = [cmd] * batch
    for _ in range(20):  # warm-up
        q.submit_many(batch_cmds, on_done)
        while q.outstanding:
            q.process_completions() or session.controller.waiter.sleep(0.01)
    done[0] = failed[0] = 0
    cpu0, daemon0 = time.process_time(), _cpu_seconds(daemon_pid)
    clock = time.perf_counter_ns
    submit_ns = reap_ns = 0
    reap_calls = 0
    submitted = 0
    start = clock()
    end = start + int(seconds * 1e9)
    waiter = session.controller.waiter
    while True:
        now = clock()
        if now >= end:
            break
        while q.outstanding <= batch * (inflight_batches - 1):
            t0 = clock()
            q.submit_many(batch_cmds, on_done)
            submit_ns += clock() - t0
            submitted += batch
        t0 = clock()
        n = q.process_completions()
        reap_ns += clock() - t0
        reap_calls += 1
        if not n:
            waiter.sleep(0.005)
    while q.outstanding:
        if not q.process_completions():
            waiter.sleep(0.005)
    elapsed = (clock() - start) / 1e9
    host_cpu = time.process_time() - cpu0
    daemon1 = _cpu_seconds(daemon_pid)
    q.close()
    return summarize_throughput([{
        "elapsed_s": elapsed, "completed": done[0], "failed": failed[0], "submitted": submitted,
        "host_cpu_s": host_cpu, "device_cpu_s": None if daemon0 is None or daemon1 is None else daemon1 - daemon0,
        "submit_ns": submit_ns, "reap_ns": reap_ns, "reap_calls": reap_calls, "batch": batch,
    }])


def summarize_throughput(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One throughput result from the raw totals of one or more runs (summed, then divided)."""
    def total(key: str) -> Any:
        return sum(r[key] for r in rounds)

    n = max(1, total("completed"))
    device_cpu = None if any(r["device_cpu_s"] is None for r in rounds) else total("device_cpu_s")
    elapsed = total("elapsed_s")
    return {
        **{key: total(key) for key in ("elapsed_s", "completed", "failed", "submitted", "host_cpu_s",
                                         "submit_ns", "reap_ns", "reap_calls")},
        "device_cpu_s": device_cpu,
        "batch": rounds[0]["batch"],
        "cmds_per_s": round(total("completed") / elapsed) if elapsed > 0 else 0,
        "host_cpu_us_per_cmd": round(total("host_cpu_s") / n * 1e6, 3),
        "device_cpu_us_per_cmd": None if device_cpu is None else round(device_cpu / n * 1e6, 3),
        "host_submit_us_per_cmd": round(total("submit_ns") / 1000 / max(1, total("submitted")), 3),
        "host_reap_us_per_cmd": round(total("reap_ns") / 1000 / n, 3),
    }


def measure_ioctl_baseline(session: Session, seconds: float) -> dict[str, Any]:
    """The same small command, each one a PASSTHRU control request (no rings)."""
    control = session.controller.control
    cmd = _small_command()
    payload = abi.CTRL_PASSTHRU.pack(1) + cmd.sqe
    clock = time.perf_counter
    n = 0
    start = clock()
    while clock() - start < seconds:
        reply, fds = control.request(abi.CtrlCmd.PASSTHRU, payload)
        for fd in fds:
            os.close(fd)
        status = abi.CQE.unpack_from(reply)[5]
        if not abi.status_ok(status):
            raise RuntimeError(f"PASSTHRU command failed: {abi.status_name(status)}")
        n += 1
    elapsed = clock() - start
    return {"cmds_per_s": round(n / elapsed), "completed": n, "elapsed_s": elapsed,
            "us_per_cmd": round(elapsed / n * 1e6, 2)}


def summarize_ioctl(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    n = sum(r["completed"] for r in rounds)
    elapsed = sum(r["elapsed_s"] for r in rounds)
    return {"cmds_per_s": round(n / elapsed), "completed": n, "elapsed_s": elapsed,
            "us_per_cmd": round(elapsed / n * 1e6, 2)}


def _best_gbs(size: int, run: Callable[[], None], repeats: int) -> float:
    run()  # warm (page tables, device memory pages)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return round(size / best / 1e9, 2)


def measure_dma(session: Session, sizes: dict[str, int], repeats: int) -> dict[str, dict[str, float]]:
    largest = max(sizes.values())
    mem = session.controller.memory_size
    if largest > mem:
        raise ValueError(f"device memory ({mem} bytes) is smaller than the {largest}-byte DMA test")
    buf = session.alloc_dma(largest)
    q = session.queue
    try:
        buf.view[:] = os.urandom(1 << 20) * (largest >> 20)
        write_gbs, read_gbs = {}, {}
        for label, size in sizes.items():
            write_gbs[label] = _best_gbs(size, lambda s=size: q.execute(cmds.write(0, buf, 0, s), 30), repeats)
            read_gbs[label] = _best_gbs(size, lambda s=size: q.execute(cmds.read(0, buf, 0, s), 30), repeats)
    finally:
        buf.close()
    return {"write": write_gbs, "read": read_gbs}


def measure_memcpy(sizes: dict[str, int], repeats: int) -> dict[str, float]:
    largest = max(sizes.values())
    flags = mmap.MAP_SHARED | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
    src = mmap.mmap(-1, largest, flags=flags)
    dst = mmap.mmap(-1, largest, flags=flags)
    try:
        src_view, dst_view = memoryview(src), memoryview(dst)
        out = {label: _best_gbs(size, lambda s=size: dst_view.__setitem__(slice(0, s), src_view[:s]), repeats)
               for label, size in sizes.items()}
        src_view.release()
        dst_view.release()
        return out
    finally:
        src.close()
        dst.close()


def run_bench(
    machine: Machine,
    device: str | None = None,
    *,
    seconds: float = 1.0,
    latency_iterations: int = 5000,
    dma_repeats: int = 5,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure everything in one run against ``device`` (default: the machine's first
    accelerator endpoint) of a simulated machine; returns the JSON-ready report (with targets
    and verdicts). A daemon started here (a separate process) is stopped at the end.
    `progress` is told, in a sentence, when the measuring (seconds) starts.

    Raises:
        DriverError: the machine is not simulated (nothing plays the driver on a live machine).
        DeviceNotFoundError: no accelerator endpoint, or none named ``device``.
    """
    from accelctl.sim import service

    platform = machine.platform
    if platform.kind != "simulator":
        raise DriverError(
            f"bench measures the driver core against the device simulator; {machine.source.name} "
            "is a live machine with no simulator",
            hint="accelctl --fixture one-card bench",
        )
    root = machine.root.path
    if device is None:
        accelerators = machine.accelerators()
        if not accelerators:
            raise DeviceNotFoundError(str(root), "no accelerator endpoint to measure")
        device = accelerators[0].id
    bdf = machine.resolve_endpoint(device).id
    started = not service.status(root).running
    try:
        socket_path = platform.endpoint_socket(bdf)
        if progress is not None:
            progress(f"measuring {bdf}: latency, throughput and DMA in {ROUNDS} rounds")
        # the endpoint in the JSON vocabulary (docs/json-schema.md): bdf, and its cardN.epM name
        report = {"bdf": bdf, "name": machine.topology().endpoint_names().get(bdf),
                  **_run(socket_path, bdf, seconds, latency_iterations, dma_repeats, service.status(root).pid)}
    finally:
        if started:
            service.stop(root)
    report["machine"] = machine.source.to_dict()
    return report


def _run(socket_path: str, bdf: str, seconds: float, latency_iterations: int, dma_repeats: int,
         daemon_pid: int | None) -> dict[str, Any]:
    platform = measure_floors()  # first: it forks, and no thread of this process exists yet
    samples: dict[str, list[float]] = {"interrupt": [], "poll": []}
    throughput_rounds: list[dict[str, Any]] = []
    ioctl_rounds: list[dict[str, Any]] = []
    per_round = [latency_iterations // ROUNDS + (i < latency_iterations % ROUNDS) for i in range(ROUNDS)]
    with Session(socket_path, bdf=bdf, wait="interrupt") as dev, \
            Session(socket_path, bdf=bdf, wait="poll") as poll_dev:
        for n in per_round:
            samples["interrupt"] += latency_samples(dev, n)
            samples["poll"] += latency_samples(poll_dev, n)
            throughput_rounds.append(measure_throughput(dev, seconds / ROUNDS, daemon_pid=daemon_pid))
            ioctl_rounds.append(measure_ioctl_baseline(dev, seconds / 2 / ROUNDS))
        dma = measure_dma(dev, SIZES, dma_repeats)
    interrupt_latency = summarize_latency(samples["interrupt"])
    poll_latency = summarize_latency(samples["poll"])
    throughput = summarize_throughput(throughput_rounds)
    ioctl = summarize_ioctl(ioctl_rounds)
    memcpy = measure_memcpy(SIZES, dma_repeats)

    # Verdicts are taken on the values as reported (rounded), so a report never says 0.6 FAIL
    # against a bound of 0.6.
    ratio = round(throughput["cmds_per_s"] / max(1, ioctl["cmds_per_s"]), 2)
    dma_ratio_write = round(dma["write"]["64MiB"] / memcpy["64MiB"], 2)
    dma_ratio_read = round(dma["read"]["64MiB"] / memcpy["64MiB"], 2)
    targets = {
        "throughput_vs_ioctl": {"value": round(ratio, 2), "min": TARGETS["throughput_vs_ioctl_ratio_min"],
                                "pass": ratio >= TARGETS["throughput_vs_ioctl_ratio_min"]},
        "dma_write_64mib_vs_memcpy": {"value": round(dma_ratio_write, 2), "min": TARGETS["dma_64mib_vs_memcpy_ratio_min"],
                                      "pass": dma_ratio_write >= TARGETS["dma_64mib_vs_memcpy_ratio_min"]},
        "dma_read_64mib_vs_memcpy": {"value": round(dma_ratio_read, 2), "min": TARGETS["dma_64mib_vs_memcpy_ratio_min"],
                                     "pass": dma_ratio_read >= TARGETS["dma_64mib_vs_memcpy_ratio_min"]},
        "poll_p50_us": {"value": poll_latency["p50"], "max": TARGETS["poll_p50_us_max"],
                        "pass": poll_latency["p50"] <= TARGETS["poll_p50_us_max"]},
        "interrupt_p50_us": {"value": interrupt_latency["p50"], "max": TARGETS["interrupt_p50_us_max"],
                             "pass": interrupt_latency["p50"] <= TARGETS["interrupt_p50_us_max"]},
        "throughput_cmds_per_s": {"value": throughput["cmds_per_s"], "min": TARGETS["throughput_cmds_per_s_min"],
                                  "pass": throughput["cmds_per_s"] >= TARGETS["throughput_cmds_per_s_min"]
                                  and throughput["failed"] == 0},
    }
    return {
        "daemon": "separate process",
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "rounds": ROUNDS,
        "platform": platform,
        "sync_latency_us": {"interrupt": interrupt_latency, "poll": poll_latency},
        "throughput_cmds_per_s": throughput["cmds_per_s"],
        "throughput_failed_cmds": throughput["failed"],
        "ioctl_baseline_cmds_per_s": ioctl["cmds_per_s"],
        "dma_write_gbs": dma["write"],
        "dma_read_gbs": dma["read"],
        "memcpy_gbs": memcpy,
        "where_time_goes": {
            "host_cpu_us_per_cmd": throughput["host_cpu_us_per_cmd"],
            "device_cpu_us_per_cmd": throughput["device_cpu_us_per_cmd"],
            "host_submit_us_per_cmd": throughput["host_submit_us_per_cmd"],
            "host_reap_us_per_cmd": throughput["host_reap_us_per_cmd"],
            "ioctl_round_trip_us": ioctl["us_per_cmd"],
            "batched_us_per_cmd": round(1e6 / max(1, throughput["cmds_per_s"]), 3),
            "interrupt_minus_poll_p50_us": round(interrupt_latency["p50"] - poll_latency["p50"], 2),
            # What the driver and the simulated device add above the platform's own floors.
            "poll_p50_above_spin_floor_us": round(poll_latency["p50"] - platform["spin_round_trip_us"], 2),
            "interrupt_p50_above_wakeup_floor_us": round(interrupt_latency["p50"] - platform["eventfd_wakeup_us"], 2),
        },
        "targets": targets,
        "all_targets_pass": all(t["pass"] for t in targets.values()),
    }
