#!/usr/bin/env python3
"""Boots the lab guest under QEMU and follows its console with a watchdog.

A boot whose console prints no new line for LAB_STALL_SECS has stalled: the
host asks QEMU (over QMP) for the state of each vCPU, its local APIC and the
interrupt controllers, then injects an NMI, which the guest kernel turns
into a panic report (every CPU's backtrace, every task, the timer lists),
and kills QEMU. The evidence is printed and kept in LAB_EVIDENCE. A boot
that stalls, or ends without reporting, is booted once more (LAB_RETRIES)
for the scenarios that did not report; a retried run says so in its
summary, and a second stall fails with its evidence.

Settings, from the environment (run.sh passes them through):
  LAB_ONLY          globs of scenario names to run (space-separated)
  LAB_STALL_SECS    silence that is a stall (default 240: see docs/testing.md)
  LAB_TIMEOUT       the longest one boot may take, silent or not (1800)
  LAB_RETRIES       boots after a stall or a crash (1)
  LAB_EVIDENCE      where stall evidence is kept (target/lab-evidence)
  LAB_STALL_TEST    test only: NAME makes the guest hang in scenario NAME
                    on its first boot, NAME:every on every boot, and
                    NAME:panic makes its kernel panic there instead
  LAB_ROUNDS        for hunting stalls (stall-loop.sh): boot this many
                    times, never retry, and tally how each boot ended
  LAB_SMP, LAB_IOMMU=0|1, LAB_TCG_THREAD=multi|single, LAB_ACCEL
                    the machine's variants, for hunting stalls
"""

import fnmatch
import json
import os
import re
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def log(message):
    print(message, file=sys.stderr, flush=True)


def env_int(name, default):
    value = os.environ.get(name, "")
    if value == "":
        return default
    if not value.isdigit():
        sys.exit(f"lab: {name} must be a whole number of seconds or a count, not {value!r}")
    return int(value)


class Qmp:
    """The few QMP calls the watchdog needs, on QEMU's unix socket."""

    def __init__(self, path, timeout=10):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.file = self.sock.makefile("rwb")
        self._reply()  # the greeting
        self.call("qmp_capabilities")

    def _reply(self):
        while True:
            line = self.file.readline()
            if not line:
                raise OSError("QMP closed the connection")
            message = json.loads(line)
            if "event" not in message:
                return message

    def call(self, command, **arguments):
        request = {"execute": command}
        if arguments:
            request["arguments"] = arguments
        self.file.write(json.dumps(request).encode() + b"\n")
        self.file.flush()
        reply = self._reply()
        if "error" in reply:
            raise OSError(reply["error"].get("desc", "QMP error"))
        return reply["return"]

    def hmp(self, command_line):
        return self.call("human-monitor-command", **{"command-line": command_line})

    def close(self):
        self.sock.close()


def accelerator():
    """TCG unless a regular KVM is loaded: the PVM-based /dev/kvm of these
    machines does not boot a stock kernel."""
    if os.environ.get("LAB_ACCEL"):
        return os.environ["LAB_ACCEL"]
    regular_kvm = os.path.exists("/sys/module/kvm_intel") or os.path.exists("/sys/module/kvm_amd")
    if os.access("/dev/kvm", os.W_OK) and regular_kvm and not os.path.exists("/sys/module/kvm_pvm"):
        return "kvm"
    return "tcg"


class Machine:
    """The QEMU command line of the lab's guest, one per run."""

    def __init__(self, kernel, initramfs, mode, work):
        self.kernel, self.initramfs, self.mode, self.work = kernel, initramfs, mode, work
        self.accel = accelerator()
        self.smp = env_int("LAB_SMP", 2)
        self.iommu = os.environ.get("LAB_IOMMU", "1") != "0"
        self.tcg_thread = os.environ.get("LAB_TCG_THREAD", "")

    def command(self, boot, only, stall):
        accel = self.accel
        if accel == "tcg" and self.tcg_thread:
            accel += f",thread={self.tcg_thread}"
        machine = "q35,kernel-irqchip=split" if self.iommu else "q35"
        # debug-threads names QEMU's threads ("CPU 0/TCG") for the host's view.
        argv = ["qemu-system-x86_64", "-name", "lab,debug-threads=on", "-M", machine, "-accel", accel, "-cpu", "max",
                "-smp", str(self.smp), "-m", "1024", "-nographic", "-no-reboot", "-nodefaults",
                "-serial", f"file:{self.console(boot)}",
                "-qmp", f"unix:{self.qmp(boot)},server=on,wait=off"]
        if self.iommu:
            argv += ["-device", "intel-iommu,intremap=on,caching-mode=on"]
        # Each NIC hangs off its own root port and a hub with nothing else on
        # it: no guest packet leaves QEMU.
        for n in (1, 2):
            argv += ["-device", f"pcie-root-port,id=rp{n},chassis={n},slot={n}",
                     "-netdev", f"hubport,id=n{n},hubid={n}",
                     "-device", f"igb,netdev=n{n},bus=rp{n},mac=52:54:00:12:34:5{n}"]
        # The kernel reports rather than idles: a task blocked for 60 s
        # panics with every task's stack, soft lockups and RCU stalls are
        # printed, and the NMI the watchdog injects is a panic whose report
        # holds every task (0x1), the timer lists (0x4), the kernel log
        # below the console's level (0x20) and every CPU's backtrace (0x40).
        append = ["console=ttyS0", "panic=-1", "oops=panic", "loglevel=5", "printk.time=1",
                  "unknown_nmi_panic=1", "panic_print=0x65", "hung_task_panic=1",
                  "sysctl.kernel.hung_task_timeout_secs=60", "softlockup_all_cpu_backtrace=1",
                  "rdinit=/init", f"lab.mode={self.mode}", f"lab.only={','.join(only)}"]
        if self.iommu:
            append += ["intel_iommu=on", "iommu=pt"]
        if stall:
            append.append(stall)
        argv += ["-kernel", self.kernel, "-initrd", self.initramfs, "-append", " ".join(append)]
        return argv

    def console(self, boot):
        return os.path.join(self.work, f"console-{boot}.log")

    def qmp(self, boot):
        return os.path.join(self.work, f"qmp-{boot}.sock")

    def qemu_log(self, boot):
        return os.path.join(self.work, f"qemu-{boot}.log")


def cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def thread_states(pid):
    """QEMU's threads as the host scheduler sees them: a halted vCPU sleeps."""
    states = []
    try:
        for tid in sorted(os.listdir(f"/proc/{pid}/task"), key=int):
            with open(f"/proc/{pid}/task/{tid}/comm") as comm, open(f"/proc/{pid}/task/{tid}/stat") as stat:
                state = stat.read().rsplit(")", 1)[1].split()[0]
                states.append(f"{comm.read().strip()}({tid})={state}")
    except OSError:
        pass
    return " ".join(states)


def guest_report_summary(report):
    """The NMI panic's head and backtraces, and the tasks neither sleeping
    nor idle; the whole report stays in the evidence file."""
    kept, keep_block = [], True
    for line in report.splitlines():
        body = re.sub(r"^\[[ 0-9.]+\] ", "", line)
        match = re.match(r"task:\S+\s+state:(\S)", body)
        if match:
            keep_block = match.group(1) not in "SI"
        elif body.startswith(("Timer List Version", "Mem-Info")):
            keep_block = False
        if keep_block:
            kept.append(line)
    return "\n".join(kept)


class Boot:
    """One QEMU run, followed line by line."""

    def __init__(self, machine, number, only, stall, marker):
        self.machine, self.number, self.marker = machine, number, marker
        self.argv = machine.command(number, only, stall)
        self.events = []  # (host seconds since start, line)
        self.outcome = None  # "done", "stall", "crash", "timeout"
        self.evidence = ""
        self.running = None  # the scenario or step under way
        self.longest_silence = (0.0, "")  # seconds, and where

    def run(self, stall_secs, timeout, printer):
        console = self.machine.console(self.number)
        open(console, "wb").close()
        qemu_log = open(self.machine.qemu_log(self.number), "wb")
        self.start = time.monotonic()
        process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=qemu_log)
        pending, offset = b"", 0
        last_line = self.start
        cpu_at_last_line = 0.0
        with open(console, "rb") as stream:
            while True:
                exited = process.poll() is not None
                stream.seek(offset)
                chunk = stream.read()
                offset += len(chunk)
                pending += chunk
                *lines, pending = pending.split(b"\n")
                now = time.monotonic()
                for raw in lines:
                    line = raw.decode(errors="replace").replace("\r", "")
                    if now - last_line > self.longest_silence[0]:
                        self.longest_silence = (now - last_line, self.where())
                    last_line = now
                    cpu_at_last_line = cpu_seconds(process.pid)
                    self.events.append((now - self.start, line))
                    self.note(line)
                    printer(line)
                if exited:
                    self.outcome = "done" if self.finished() else "crash"
                    break
                if now - last_line > stall_secs:
                    self.outcome = "stall"
                    self.diagnose(process, now - last_line, cpu_seconds(process.pid) - cpu_at_last_line)
                    break
                if now - self.start > timeout:
                    self.outcome = "timeout"
                    self.diagnose(process, now - last_line, cpu_seconds(process.pid) - cpu_at_last_line)
                    break
                time.sleep(0.25)
        qemu_log.close()
        self.exit_code = process.wait()
        return self.outcome

    def note(self, line):
        match = re.match(r"lab: RUN (\S+)", line)
        if match:
            self.running = match.group(1)
        elif re.match(r"lab: (PASS|FAIL|SKIP) ", line):
            self.running = None
        elif line.startswith("demo: == "):
            self.running = line[len("demo: == "):]

    def finished(self):
        return any(re.match(self.marker, line) for _, line in self.events)

    def where(self):
        if self.running:
            return self.running
        if not any(line.startswith(("lab: ", "demo: ", "bench: ")) for _, line in self.events):
            return "the guest's boot"
        return "between scenarios"

    def diagnose(self, process, silent, cpu):
        """Asks QEMU for the vCPUs' state, makes the guest report, kills it."""
        parts = [f"boot {self.number}: no console line for {silent:.0f} s, in {self.where()}, "
                 f"{time.monotonic() - self.start:.0f} s after QEMU started",
                 f"QEMU used {cpu:.1f} s of CPU in that silence ({100 * cpu / max(silent, 1):.0f}% of a core); "
                 f"host load average {' '.join(open('/proc/loadavg').read().split()[:3])}",
                 f"QEMU threads (R running, S sleeping): {thread_states(process.pid)}",
                 f"accelerator: {self.machine.accel}; command line:",
                 "  " + " ".join(self.argv)]
        try:
            qmp = Qmp(self.machine.qmp(self.number))
            try:
                parts.append(f"QMP query-status: {qmp.call('query-status')}")
                lapics = [f"info lapic {cpu}" for cpu in range(self.machine.smp)]
                for command in ["info cpus", "info registers -a", *lapics, "info irq", "info pic"]:
                    text = qmp.hmp(command)
                    # The vector and FPU registers say nothing about a stall.
                    text = "\n".join(line for line in text.splitlines()
                                     if not line.startswith(("YMM", "XMM", "FPR", "FCW")))
                    parts.append(f"(qemu) {command}\n{text.rstrip()}")
                console = self.machine.console(self.number)
                before = os.path.getsize(console)
                qmp.call("inject-nmi")
                parts.append("(qemu) inject-nmi: the guest's report follows if its kernel still runs")
            finally:
                qmp.close()
            injected = time.monotonic()
            while process.poll() is None and time.monotonic() < injected + 30:
                time.sleep(0.25)
            if process.poll() is not None:
                parts.append(f"the guest's kernel panicked and QEMU ended {time.monotonic() - injected:.1f} s after the NMI")
            with open(console, "rb") as stream:
                stream.seek(before)
                report = stream.read().decode(errors="replace").replace("\r", "")
            if report.strip():
                parts.append("guest report (tasks sleeping or idle left out):\n" + guest_report_summary(report))
            else:
                parts.append("the guest printed nothing after the NMI: its vCPUs do not run")
        except (OSError, ValueError) as error:
            parts.append(f"QMP failed: {error}")
        if process.poll() is None:
            process.kill()
        parts.append(self.qemu_messages())
        self.evidence = "\n".join(parts)

    def qemu_messages(self):
        with open(self.machine.qemu_log(self.number), errors="replace") as messages:
            text = messages.read().strip()
        return "QEMU's own messages:\n" + text if text else "QEMU printed no message of its own"



def crash_report(console):
    """What a guest that ended early said last: its kernel's report from
    the first sign of trouble on, or else the console's last lines."""
    lines = console.splitlines()
    for index, line in enumerate(lines):
        if re.search(r"Kernel panic|BUG:|Oops|general protection|blocked for more than|soft lockup|rcu_sched detected|rcu_preempt detected", line):
            return "guest console from the first sign of trouble (tasks sleeping or idle left out):\n" + \
                guest_report_summary("\n".join(lines[max(index - 10, 0):]))
    return "guest console, last 60 lines:\n" + "\n".join(lines[-60:])


def scenario_names(directory, globs):
    names = sorted(name[:-3] for name in os.listdir(directory) if name.endswith(".sh"))
    if globs:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs)]
    return names


def keep_evidence(directory, boot, console_text):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{time.strftime('%Y%m%d-%H%M%S')}-boot{boot.number}-{boot.outcome}.txt")
    with open(path, "w") as out:
        out.write(boot.evidence + "\n\n==== guest console ====\n" + console_text)
    return path


def console_text(machine, number):
    with open(machine.console(number), "rb") as stream:
        return stream.read().decode(errors="replace").replace("\r", "")


def hunt(machine, rounds, only, marker, stall_secs, timeout, evidence_dir):
    """Boots ROUNDS times with no retry and says how each boot ended."""
    tally = {}
    for number in range(1, rounds + 1):
        boot = Boot(machine, number, only, "", marker)
        outcome = boot.run(stall_secs, timeout, lambda line: None)
        if outcome == "done" and any(line.startswith("lab: FAIL ") for _, line in boot.events):
            outcome = "failed"
        silence, where = boot.longest_silence
        line = (f"lab: round {number}: {outcome}, {time.monotonic() - boot.start:.0f} s, "
                f"longest silence {silence:.0f} s in {where}")
        if outcome not in ("done", "failed"):
            if outcome == "crash":
                boot.evidence = boot.qemu_messages() + "\n" + crash_report(console_text(machine, number))
            line += f", stopped in {boot.where()}; evidence: {keep_evidence(evidence_dir, boot, console_text(machine, number))}"
        print(line, flush=True)
        tally[outcome] = tally.get(outcome, 0) + 1
        for leftover in (machine.console(number), machine.qemu_log(number)):
            os.remove(leftover)
    print(f"lab: {rounds} boots: " + ", ".join(f"{count} {outcome}" for outcome, count in sorted(tally.items())))
    return 0 if set(tally) == {"done"} else 1


def main():
    mode, kernel, initramfs, work = sys.argv[1:5]
    machine = Machine(kernel, initramfs, mode, work)
    stall_secs = env_int("LAB_STALL_SECS", 240)
    timeout = env_int("LAB_TIMEOUT", 1800)
    retries = env_int("LAB_RETRIES", 1)
    evidence_dir = os.path.abspath(os.environ.get("LAB_EVIDENCE") or os.path.join(HERE, "..", "target", "lab-evidence"))
    stall_test = os.environ.get("LAB_STALL_TEST", "")
    stall_name, _, stall_how = stall_test.partition(":")
    if stall_how not in ("", "every", "panic"):
        sys.exit(f"lab: LAB_STALL_TEST takes NAME, NAME:every or NAME:panic, not {stall_test!r}")

    selected = scenario_names(os.path.join(HERE, "guest", "scenarios"), os.environ.get("LAB_ONLY", "").split())
    if mode == "test" and not selected:
        sys.exit(f"lab: no scenario matches LAB_ONLY={os.environ.get('LAB_ONLY')!r}")
    marker = {"test": r"lab: \d+ passed, \d+ failed, \d+ skipped$", "demo": r"demo: done$",
              "bench": r"bench: .*ADD"}[mode]

    def printer(line):
        # A failed scenario's log follows its FAIL line, indented.
        if mode == "test" and line.startswith(("lab: ", "    ")) and not re.match(marker, line):
            print(line, flush=True)
        elif mode == "demo" and line.startswith("demo: "):
            print(line[len("demo: "):], flush=True)
        elif mode == "bench" and line.startswith("bench: "):
            print(line, flush=True)

    rounds = env_int("LAB_ROUNDS", 0)
    if rounds:
        return hunt(machine, rounds, selected if mode == "test" else [], marker, stall_secs, timeout, evidence_dir)

    results = {}  # scenario -> PASS, FAIL or SKIP
    troubles = []  # (boot, where, evidence path) of each stall or crash
    boot = None
    for number in range(1, retries + 2):
        remaining = [n for n in selected if n not in results]
        if mode == "test" and not remaining:
            break
        stall = ""
        if stall_name and (number == 1 or stall_how == "every"):
            stall = f"lab.panic={stall_name}" if stall_how == "panic" else f"lab.stall={stall_name}"
        boot = Boot(machine, number, remaining if mode == "test" else [], stall, marker)
        if number > 1:
            what = f"{len(remaining)} scenarios not yet reported" if mode == "test" else "the whole " + mode
            log(f"lab: booting again (retry {number - 1} of {retries}) for {what}")
        outcome = boot.run(stall_secs, timeout, printer)
        for _, line in boot.events:
            match = re.match(r"lab: (PASS|FAIL|SKIP) (\S+)", line)
            if match:
                results[match.group(2)] = match.group(1)
        if outcome == "done":
            break
        if outcome == "crash":
            boot.evidence = (f"boot {number}: the guest ended without its summary (QEMU exit {boot.exit_code}) "
                             f"in {boot.where()}; command line:\n  " + " ".join(boot.argv) + "\n"
                             + boot.qemu_messages())
        path = keep_evidence(evidence_dir, boot, console_text(machine, boot.number))
        troubles.append((boot, path))
        log(f"lab: boot {number} {'stalled' if outcome == 'stall' else 'ended' if outcome == 'crash' else 'timed out'} "
            f"in {boot.where()}; evidence (also kept in {path}):")
        log("\n".join("    " + line for line in boot.evidence.splitlines()))
        if outcome == "crash":
            log("\n".join("    " + line for line in crash_report(console_text(machine, boot.number)).splitlines()))

    if len(troubles) == 1 and boot.outcome == "done":
        first, path = troubles[0]
        kind = "stall" if first.outcome == "stall" else first.outcome
        retried = (f" after 1 retried boot: {kind} in {first.where()} at {first.events[-1][0] if first.events else 0:.0f} s "
                   f"of boot 1 (evidence: {path})")
    else:
        retried = f" after {len(troubles)} retried boots" if troubles and boot.outcome == "done" else ""

    if mode != "test":
        if boot.outcome == "done":
            if retried:
                log(f"lab: the {mode} passed{retried}")
            return 0
        log(f"lab: the {mode} failed: boot {boot.number} {boot.outcome} in {boot.where()}; guest console:")
        log(console_text(machine, boot.number))
        return 1

    silence, where = boot.longest_silence
    log(f"lab: the longest silence of boot {boot.number} was {silence:.0f} s, in {where} (a stall is {stall_secs} s)")
    passed = sum(1 for r in results.values() if r == "PASS")
    failed = sum(1 for r in results.values() if r == "FAIL")
    skipped = sum(1 for r in results.values() if r == "SKIP")
    missing = [n for n in selected if n not in results]
    print(f"lab: {passed} passed, {failed} failed, {skipped} skipped{retried}", flush=True)
    if missing:
        log(f"lab: failed: {len(missing)} scenarios never reported ({' '.join(missing)}): "
            f"boot {boot.number} {boot.outcome} in {boot.where()}, with no retry left")
        return 1
    if failed:
        log(f"lab: failed (accelerator {machine.accel}); guest console:")
        for number in range(1, boot.number + 1):
            log(f"==== boot {number} ====")
            log(console_text(machine, number))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
