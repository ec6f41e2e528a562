"""An example (or a few) at the end of every help page, in the style of gh and kubectl:

    Examples:
      # Cards and endpoints of the bundled two-socket machine
      $ accelctl --fixture two-socket list

They run on bundled fixtures, so each works as typed on any machine; tests/cli/test_help.py runs
every one that `runs` (in this order: some build on the one before) and checks its exit code.
"""

from __future__ import annotations

from typing import Any


class HelpExample:
    """One example. A plain slotted class, not a dataclass: this module is imported on every
    run (the help pages are built each time), and @dataclass compiles source at import."""

    __slots__ = ("what", "command", "exits", "runs")

    def __init__(self, what: str, command: str, *, exits: tuple[int, ...] = (0,), runs: bool = True) -> None:
        self.what = what
        self.command = command
        #: exit codes this example may end with (bench: a busy machine can miss a target)
        self.exits = exits
        #: False for an example that serves forever or needs a file of yours
        self.runs = runs


E = HelpExample
EXAMPLES: dict[str, list[HelpExample]] = {
    "": [
        E("What is there, on a bundled fixture (no hardware needed)", "accelctl --fixture two-socket list"),
        E("Check the accelerators of this machine; exit 1 on errors", "accelctl diag", runs=False),
    ],
    "list": [
        E("Accelerator cards and endpoints", "accelctl --fixture two-socket list"),
        E("Every PCI function, as JSON for scripts", "accelctl --fixture two-socket list --all --json"),
    ],
    "topology": [
        E("The annotated PCIe tree", "accelctl --fixture two-socket topology"),
        E("The tree for Graphviz", "accelctl --fixture two-socket topology --format dot"),
    ],
    "topology matrix": [
        E("Who can talk to whom, and whether PCIe peer-to-peer works", "accelctl --fixture two-socket topology matrix"),
    ],
    "diag": [
        E("Check a machine whose links trained too slow (exit 1)", "accelctl --fixture fault-downtrained diag --level 1",
          exits=(1,)),
        E("As JSON, accepting a machine without accelerators", "accelctl --fixture one-card diag --allow-empty --json"),
    ],
    "metrics": [
        E("Prometheus metrics on stdout", "accelctl --fixture two-socket metrics"),
    ],
    "addr show": [
        E("The logical address of every endpoint", "accelctl --fixture two-socket addr show"),
        E("Numbered by slot instead of position", "accelctl --fixture two-socket addr show --order slot"),
    ],
    "addr assign": [
        E("Persist this machine's map (each machine, fixture or snapshot keeps its own)",
          "accelctl --fixture two-socket addr assign"),
    ],
    "addr diff": [
        E("Compare the machine with its persisted map; exit 1 when they differ",
          "accelctl --fixture two-socket addr diff"),
    ],
    "addr plan": [
        E("Would two more endpoints with 32G BARs fit below the empty hot-plug port?",
          "accelctl --fixture two-socket addr plan --add port=0000:02:04.0,endpoints=2,bar=32G"),
    ],
    "sim": [
        E("Start the simulator of a fixture in the background", "accelctl --fixture one-card sim serve"),
        E("Stop it", "accelctl --fixture one-card sim stop"),
    ],
    "sim serve": [
        E("Start the simulator of a fixture in the background", "accelctl --fixture one-card sim serve"),
    ],
    "sim status": [
        E("Its pid and sockets; exit 1 when none runs", "accelctl --fixture one-card sim status"),
    ],
    "sim stop": [
        E("Stop it (commands start it again on demand)", "accelctl --fixture one-card sim stop"),
    ],
    "io": [
        E("Write stdin to device memory, read it back",
          "echo hello | accelctl --fixture one-card io write card0.ep0 --address 0x1000"),
    ],
    "io write": [
        E("Write stdin at 0x1000", "echo hello | accelctl --fixture one-card io write card0.ep0 --address 0x1000"),
    ],
    "io compare": [
        E("Compare device memory with stdin; exit 7 when they differ",
          "echo hello | accelctl --fixture one-card io compare card0.ep0 --address 0x1000"),
    ],
    "io read": [
        E("Read 6 bytes into a file", "accelctl --fixture one-card io read card0.ep0 --address 0x1000 --length 6 -o hello.bin"),
        E("Into a pipe", "accelctl --fixture one-card io read card0.ep0 --address 0x1000 --length 6 | od -c"),
    ],
    "io fill": [
        E("Fill 4 KiB with a 32-bit pattern", "accelctl --fixture one-card io fill card0.ep0 --length 4096 --pattern 0xdeadbeef"),
    ],
    "admin": [
        E("Identify the controller of an endpoint", "accelctl --fixture one-card admin identify card0.ep0"),
    ],
    "admin identify": [
        E("Model, serial, firmware and logical address", "accelctl --fixture one-card admin identify card0.ep0"),
    ],
    "admin log": [
        E("Temperature and counters", "accelctl --fixture one-card admin log card0.ep0 --page health"),
    ],
    "admin features": [
        E("Every feature's value", "accelctl --fixture one-card admin features card0.ep0"),
    ],
    "admin get-feature": [
        E("One feature, by name", "accelctl --fixture one-card admin get-feature card0.ep0 keep-alive-timer"),
    ],
    "admin set-feature": [
        E("Set it and read it back", "accelctl --fixture one-card admin set-feature card0.ep0 keep-alive-timer 5000"),
    ],
    "reset": [
        E("What a card reset would take down, without doing it",
          "accelctl --fixture two-socket reset card1.ep2 --level card --dry-run"),
        E("Do it (the fixture's simulator plays the device)", "accelctl --fixture two-socket reset card1 --level card --yes"),
    ],
    "snapshot": [
        E("Capture a machine into an archive", "accelctl --fixture two-socket snapshot --force machine.tar.gz"),
        E("Replay it anywhere", "accelctl --sysfs-root machine.tar.gz list"),
    ],
    "watch": [
        E("Events as they happen, for 2 seconds", "accelctl --fixture two-socket watch --duration 2"),
    ],
    "bench": [
        E("The driver core against the simulator, briefly", "accelctl bench --seconds 0.2 --iterations 200",
          exits=(0, 1)),
    ],
    "fixture list": [
        E("The bundled fixtures", "accelctl fixture list"),
    ],
    "fixture build": [
        E("A private copy of a bundled fixture, to change or inject faults into",
          "accelctl fixture build one-card ./one-card-copy"),
        E("Build a sysfs tree from your own spec", "accelctl fixture build my-machine.toml ./my-machine", runs=False),
    ],
    "k8s resourceslice": [
        E("DRA ResourceSlices of a machine, as YAML",
          "accelctl --fixture two-socket k8s resourceslice --node node-1 --driver accel.example.com"),
    ],
    "k8s nfd": [
        E("Node Feature Discovery labels on stdout", "accelctl --fixture two-socket k8s nfd -o -"),
    ],
    "k8s device-plugin": [
        E("Serve the kubelet device plugin (runs until stopped)",
          "accelctl k8s device-plugin --resource-name accel.example.com/accelerator", runs=False),
    ],
}
# A group whose page would repeat its main subcommand's first example shows that one.
for _group, _sub in (("addr", "addr show"), ("fixture", "fixture list"), ("k8s", "k8s resourceslice")):
    EXAMPLES[_group] = EXAMPLES[_sub][:1]


def epilog(path: str) -> str | None:
    """The Examples section of `path`'s help page ('' is the top level)."""
    examples = EXAMPLES.get(path)
    if not examples:
        return None
    # "\b" opens a paragraph the help formatter must not rewrap
    paragraphs = [f"\b\nExamples:\n  # {examples[0].what}\n  $ {examples[0].command}"]
    paragraphs += [f"\b\n  # {ex.what}\n  $ {ex.command}" for ex in examples[1:]]
    return "\n\n".join(paragraphs)


def attach(command: Any, path: str = "") -> None:
    """Give `command` and every command below it its examples (typer builds the command objects
    each run; this is the one place that adds the section, for every command)."""
    text = epilog(path)
    if text is not None:
        command.epilog = text
    for name, sub in (getattr(command, "commands", None) or {}).items():
        attach(sub, f"{path} {name}".strip())
