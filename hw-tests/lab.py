#!/usr/bin/env python3
"""Boots the lab guest under QEMU and follows it with a watchdog.

The guest has two serial ports: its kernel's console on the first, and the
lab's own lines (scenarios, demo, benchmarks) on the second, so that a
kernel message can never cut into a result line. A boot that prints no new
line of the lab's for LAB_STALL_SECS has stalled: the host asks QEMU (over
QMP) for the state of each vCPU, its local APIC and the interrupt
controllers, then injects an NMI, which the guest kernel turns into a panic
report (every CPU's backtrace, every task, the timer lists), and kills
QEMU. The evidence is printed and kept in LAB_EVIDENCE. A boot that stalls,
or whose kernel panics without having hit a kernel bug (a hung task, a
lost timer), is booted once more (LAB_RETRIES) for the scenarios that did
not report; a retried run says so in its summary, and a second stall fails
with its evidence. A scenario that fails, a demo that fails, a kernel bug
(BUG, Oops) and a QEMU that does not start are never retried.

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
  LAB_SMP, LAB_IOMMU=0|1, LAB_INTREMAP=on|off, LAB_TCG_THREAD=multi|single,
  LAB_ACCEL, LAB_KERNEL_ARGS (appended to the guest's command line)
                    the machine's variants, for hunting stalls
"""

import fnmatch
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The guest kernel's own reports of trouble.
TROUBLE = re.compile(r"Kernel panic|BUG:|Oops|general protection|blocked for more than|soft lockup|"
                     r"rcu: INFO: .* detected stalls")
# Trouble that is a kernel bug hit by what the lab did: a finding, not luck.
KERNEL_BUG = re.compile(r"BUG:|Oops|general protection")


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
        self.intremap = os.environ.get("LAB_INTREMAP", "on")
        self.tcg_thread = os.environ.get("LAB_TCG_THREAD", "")

    def command(self, boot, only, stall):
        accel = self.accel
        if accel == "tcg" and self.tcg_thread:
            accel += f",thread={self.tcg_thread}"
        machine = "q35,kernel-irqchip=split" if self.iommu else "q35"
        # debug-threads names QEMU's threads ("CPU 0/TCG") for the host's view.
        argv = ["qemu-system-x86_64", "-name", "lab,debug-threads=on", "-M", machine, "-accel", accel, "-cpu", "max",
                "-smp", str(self.smp), "-m", "1024", "-nographic", "-no-reboot", "-nodefaults",
                "-serial", f"file:{self.console(boot)}", "-serial", f"file:{self.lab_log(boot)}",
                "-qmp", f"unix:{self.qmp(boot)},server=on,wait=off"]
        if self.iommu:
            argv += ["-device", f"intel-iommu,intremap={self.intremap},caching-mode=on"]
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
        # no_timer_check: at boot the kernel checks that the IO-APIC timer
        # ticks within a busy-wait, and with interrupt remapping panics when
        # it does not ("timer doesn't work through Interrupt-remapped
        # IO-APIC"); under TCG on a loaded host the ticks come late. KVM
        # guests skip that check the same way.
        append = ["console=ttyS0", "no_timer_check", "panic=-1", "oops=panic", "loglevel=5", "printk.time=1",
                  "unknown_nmi_panic=1", "panic_print=0x65", "hung_task_panic=1",
                  "sysctl.kernel.hung_task_timeout_secs=60", "softlockup_all_cpu_backtrace=1",
                  "rdinit=/init", f"lab.mode={self.mode}", f"lab.only={','.join(only)}"]
        if self.iommu:
            append += ["intel_iommu=on", "iommu=pt"]
        append += os.environ.get("LAB_KERNEL_ARGS", "").split()
        if stall:
            append.append(stall)
        argv += ["-kernel", self.kernel, "-initrd", self.initramfs, "-append", " ".join(append)]
        return argv

    def console(self, boot):
        """The first serial port: the guest kernel's console."""
        return os.path.join(self.work, f"console-{boot}.log")

    def lab_log(self, boot):
        """The second serial port: what the lab's programs print."""
        return os.path.join(self.work, f"lab-{boot}.log")

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


class Follower:
    """The whole lines appended to a file since the last call."""

    def __init__(self, path):
        self.stream = open(path, "rb")
        self.pending = b""

    def lines(self):
        self.pending += self.stream.read()
        *lines, self.pending = self.pending.split(b"\n")
        return [raw.decode(errors="replace").replace("\r", "") for raw in lines]


class Boot:
    """One QEMU run, followed line by line."""

    def __init__(self, machine, number, only, stall, marker):
        self.machine, self.number, self.marker = machine, number, marker
        self.argv = machine.command(number, only, stall)
        self.events = []  # (host seconds since start, line)
        self.outcome = None  # "done", "failed", "stall", "timeout", "crash" or "qemu"
        self.evidence = ""
        self.running = None  # the scenario or step under way
        self.longest_silence = (0.0, "no line from the lab")  # seconds, and where
        self.cause = ""  # what the guest's kernel said of a stall or crash
        self.snapshot = ""  # QEMU's state when the guest first reported trouble

    def run(self, stall_secs, timeout, printer):
        for path in (self.machine.console(self.number), self.machine.lab_log(self.number)):
            open(path, "wb").close()
        self.start = time.monotonic()
        with open(self.machine.qemu_log(self.number), "wb") as qemu_log:
            try:
                process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=qemu_log, stderr=qemu_log)
            except OSError as error:
                sys.exit(f"lab: cannot start {self.argv[0]}: {error}")
        try:
            self.follow(process, stall_secs, timeout, printer)
        finally:
            # Whatever ends the watch (an exception, SIGTERM) ends QEMU too.
            if process.poll() is None:
                process.kill()
            self.exit_code = process.wait()
        return self.outcome

    def follow(self, process, stall_secs, timeout, printer):
        lab = Follower(self.machine.lab_log(self.number))
        kernel = Follower(self.machine.console(self.number))
        self.last_line = self.start
        cpu_at_last_line = 0.0
        while True:
            exited = process.poll() is not None
            now = time.monotonic()
            for line in lab.lines():
                if now - self.last_line > self.longest_silence[0]:
                    self.longest_silence = (now - self.last_line, self.where())
                self.last_line = now
                cpu_at_last_line = cpu_seconds(process.pid)
                self.events.append((now - self.start, line))
                self.note(line)
                printer(line)
            for line in kernel.lines():
                if not self.snapshot and not exited and TROUBLE.search(line):
                    self.take_snapshot(line)
            if exited:
                self.outcome = self.ended(process.returncode)
                return
            silent = now - self.last_line
            if silent > stall_secs or now - self.start > timeout:
                self.outcome = "stall" if silent > stall_secs else "timeout"
                self.diagnose(process, silent, cpu_seconds(process.pid) - cpu_at_last_line)
                return
            time.sleep(0.25)

    def ended(self, exit_code):
        """How a boot whose QEMU exited ended."""
        if self.finished():
            return "done"
        if any(re.match(r"lab: (demo|bench) failed", line) for _, line in self.events):
            return "failed"
        if exit_code != 0 and os.path.getsize(self.machine.console(self.number)) == 0:
            return "qemu"  # it never started the guest
        return "crash"

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
        if not self.events:
            return "the guest's boot"
        return "between scenarios"

    def diagnose(self, process, silent, cpu):
        """Asks QEMU for the vCPUs' state, makes the guest report, kills it."""
        parts = [f"boot {self.number}: no line from the lab for {silent:.0f} s, in {self.where()}, "
                 f"{time.monotonic() - self.start:.0f} s after QEMU started",
                 f"QEMU used {cpu:.1f} s of CPU in that silence ({100 * cpu / max(silent, 1):.0f}% of a core); "
                 f"host load average {' '.join(open('/proc/loadavg').read().split()[:3])}",
                 f"QEMU threads (R running, S sleeping): {thread_states(process.pid)}",
                 f"accelerator: {self.machine.accel}; command line:",
                 "  " + " ".join(self.argv)]
        if self.snapshot:
            parts.append(self.snapshot)
        try:
            qmp = Qmp(self.machine.qmp(self.number))
            try:
                parts.append(self.qemu_state(qmp, "at the stall"))
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

    def qemu_state(self, qmp, when):
        """What QEMU says of each vCPU, its local APIC and the interrupt
        controllers."""
        parts = [f"QEMU's state {when}: query-status {qmp.call('query-status')}"]
        lapics = [f"info lapic {cpu}" for cpu in range(self.machine.smp)]
        for command in ["info cpus", "info registers -a", *lapics, "info irq", "info pic"]:
            text = qmp.hmp(command)
            # The vector and FPU registers say nothing about a stall.
            text = "\n".join(line for line in text.splitlines()
                             if not line.startswith(("YMM", "XMM", "FPR", "FCW")))
            parts.append(f"(qemu) {command}\n{text.rstrip()}")
        return "\n".join(parts)

    def take_snapshot(self, line):
        """QEMU's state when the guest kernel first reports trouble (an RCU
        stall, a soft lockup, a hung task): the guest may panic a moment
        later, and the stuck vCPU's APIC is what tells why."""
        try:
            qmp = Qmp(self.machine.qmp(self.number))
            try:
                self.snapshot = self.qemu_state(qmp, f"when the guest reported: {line.strip()}")
            finally:
                qmp.close()
        except (OSError, ValueError) as error:
            self.snapshot = f"QMP failed when the guest reported trouble: {error}"

    def explain(self):
        """Completes the evidence of a boot that did not end well, and
        names the cause when the guest's kernel said it."""
        console = self.console_text()
        self.cause = cause(console)
        if self.outcome in ("crash", "qemu"):
            what = ("QEMU failed to start the guest" if self.outcome == "qemu"
                    else "the guest ended without its summary")
            self.evidence = "\n".join(filter(None, [
                f"boot {self.number}: {what} (QEMU exit {self.exit_code}) in {self.where()}; command line:\n  "
                + " ".join(self.argv),
                self.snapshot, self.qemu_messages(),
                crash_report(console) if self.outcome == "crash" else ""]))

    def console_text(self):
        return read_text(self.machine.console(self.number))

    def lab_text(self):
        return read_text(self.machine.lab_log(self.number))

    def qemu_messages(self):
        with open(self.machine.qemu_log(self.number), errors="replace") as messages:
            text = messages.read().strip()
        return "QEMU's own messages:\n" + text if text else "QEMU printed no message of its own"


def cause(console):
    """What the guest kernel said of a stall, when it said something we
    know: a vCPU whose timer interrupt never came (QEMU's TCG on a loaded
    host, see docs/testing.md), or a task stuck in the kernel."""
    timer = re.search(r"Possible timer handling issue on cpu=(\d+)", console)
    if timer:
        return f"CPU {timer.group(1)} of the guest never got its timer interrupt"
    hung = re.search(r"INFO: task (\S+) blocked for more than", console)
    if hung:
        return f"task {hung.group(1)} hung in the guest's kernel"
    return ""


def crash_report(console):
    """What a guest that ended early said last: its kernel's report from
    the first sign of trouble on, or else the console's last lines."""
    lines = console.splitlines()
    for index, line in enumerate(lines):
        if TROUBLE.search(line):
            return "guest console from the first sign of trouble (tasks sleeping or idle left out):\n" + \
                guest_report_summary("\n".join(lines[max(index - 10, 0):]))
    return "guest console, last 60 lines:\n" + "\n".join(lines[-60:])


def read_text(path):
    with open(path, "rb") as stream:
        return stream.read().decode(errors="replace").replace("\r", "")


def scenario_names(directory, globs):
    names = sorted(name[:-3] for name in os.listdir(directory) if name.endswith(".sh"))
    if globs:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs)]
    return names


def keep_evidence(directory, boot):
    """Writes the evidence and both serial ports to a file; says where, or
    why it could not."""
    path = os.path.join(directory, f"{time.strftime('%Y%m%d-%H%M%S')}-boot{boot.number}-{boot.outcome}.txt")
    try:
        os.makedirs(directory, exist_ok=True)
        with open(path, "w") as out:
            out.write(boot.evidence + "\n\n==== guest kernel console ====\n" + boot.console_text()
                      + "\n\n==== the lab's output ====\n" + boot.lab_text())
    except OSError as error:
        return f"not kept: {error}"
    return path


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
            boot.explain()
            line += f", stopped in {boot.where()}"
            if boot.cause:
                line += f": {boot.cause}"
            line += f"; evidence: {keep_evidence(evidence_dir, boot)}"
        print(line, flush=True)
        tally[outcome] = tally.get(outcome, 0) + 1
        for leftover in (machine.console(number), machine.lab_log(number), machine.qemu_log(number)):
            os.remove(leftover)
    print(f"lab: {rounds} boots: " + ", ".join(f"{count} {outcome}" for outcome, count in sorted(tally.items())))
    return 0 if set(tally) == {"done"} else 1


def main():
    # Ended by a signal, the watch still ends its QEMU (Boot.run's finally).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("lab: stopped by SIGTERM"))
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
    if stall_name and (mode != "test" or stall_name not in selected):
        sys.exit(f"lab: LAB_STALL_TEST names {stall_name!r}, which is not a scenario this run selects")
    marker = {"test": r"lab: \d+ passed, \d+ failed, \d+ skipped$", "demo": r"demo: done$",
              "bench": r"bench: .*ADD"}[mode]

    def printer(line):
        # The guest's own summary is replaced by the host's, which counts
        # every boot.
        if mode == "test" and not re.match(marker, line):
            print(line, flush=True)
        elif mode == "demo" and line.startswith("demo: "):
            print(line[len("demo: "):], flush=True)
        elif mode == "bench" and line.startswith("bench: "):
            print(line, flush=True)

    rounds = env_int("LAB_ROUNDS", 0)
    if rounds:
        return hunt(machine, rounds, selected if mode == "test" else [], marker, stall_secs, timeout, evidence_dir)

    results = {}  # scenario -> PASS, FAIL or SKIP
    troubles = []  # (boot, evidence path) of each boot retried
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
            if match and match.group(2) in remaining:
                results[match.group(2)] = match.group(1)
        if outcome in ("done", "failed"):
            break
        boot.explain()
        path = keep_evidence(evidence_dir, boot)
        verb = {"stall": "stalled", "timeout": "timed out", "crash": "ended", "qemu": "failed"}[outcome]
        log(f"lab: boot {number} {verb} in {boot.where()}{': ' + boot.cause if boot.cause else ''}; "
            f"evidence (kept: {path}):")
        log("\n".join("    " + line for line in boot.evidence.splitlines()))
        if outcome == "qemu" or KERNEL_BUG.search(boot.console_text()):
            break  # not luck: booting again would hide it
        troubles.append((boot, path))

    if boot.outcome in ("done", "failed") and troubles:
        first, path = troubles[0]
        retried = (f" after {len(troubles)} retried boot{'s' if len(troubles) > 1 else ''}: {first.outcome} in "
                   f"{first.where()} at {first.last_line - first.start:.0f} s of boot 1"
                   f"{', ' + first.cause if first.cause else ''} (evidence: {path})")
    else:
        retried = ""

    if mode != "test":
        if boot.outcome == "done":
            if retried:
                log(f"lab: the {mode} passed{retried}")
            return 0
        log(f"lab: the {mode} failed: boot {boot.number} {boot.outcome} in {boot.where()}")
        print_consoles(boot)
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
            f"boot {boot.number} {boot.outcome} in {boot.where()}")
        print_consoles(boot)
        return 1
    if failed:
        log(f"lab: failed (accelerator {machine.accel})")
        print_consoles(boot)
        return 1
    return 0


def print_consoles(boot):
    log(f"==== boot {boot.number}: the guest kernel's console ====")
    log(boot.console_text())
    log(f"==== boot {boot.number}: the lab's output ====")
    log(boot.lab_text())


if __name__ == "__main__":
    sys.exit(main())
