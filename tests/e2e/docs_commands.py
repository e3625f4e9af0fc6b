#!/usr/bin/python3
"""Every command shown in README.md and docs/*.md runs as written.

The walker reads each code paragraph of the docs, keeps its command lines
(not synopses, not the output shown beside them) and runs them with bash,
in a copy of the repository whose build/ is the build under test, each
paragraph in a shell of its own (set -e: every line must succeed). A
paragraph that shows `scripts/start-services` runs against no flow and
stops what it started; one that uses run/bootstrap otherwise gets a flow
started first. Only three things are rewritten, all things a reader does by
hand: `o-...` becomes the id the paragraph's own `place` printed; a
`status` right after a `place` is repeated while it says "not recorded yet"
(exit 6); and `lag` of a group of the flow just started, while the group has
not committed yet (exit 5). Every paragraph not run is listed in SKIP with the reason, so
that a new command in the docs is run unless someone says why not.

Environment (set by ctest): EVK_BIN_DIR (build dir), EVK_SOURCE_DIR.
"""
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("EVK_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.path.abspath(os.environ.get("EVK_BIN_DIR", os.path.join(SRC, "build")))

COMMAND = re.compile(r"^(build/|scripts/|cmake |cc |export |printf |cd |until \[|until grep|"
                     r"echo |rm |docker |sudo |B=|EVK_\w+=|evk-dev-broker |evk-order |evk-admin )")
# Not commands: a synopsis ("evk-order place --customer C --item SKU:QTY:PRICE_CENTS
# [--item ...]"), a diagram ("evk-order ──OrderPlaced──▶ orders"), a line of
# the benchmark's output ("evk-order publish   248684 msgs/s ...").
NOT_COMMAND = re.compile(r"\[-|\]\.\.\.|\[[A-Z]|\[same|─|▶|msgs/s")

# (doc, text in the paragraph) -> why it is not run here. Everything else is.
SKIP = {
    ("README.md", "scripts/demo"): "the README's first command; CI runs the second, scripts/test",
    ("docs/FLOW.md", "scripts/demo"): "as in README.md",
    ("README.md", "EVK_KAFKA_SASL_PASSWORD"): "needs a secret file of a real cluster",
    ("README.md", "$B"): "needs a real cluster ($B)",
    ("docs/SCALING.md", "$B"): "needs a real cluster ($B)",
    ("README.md", "docker compose"): "Docker: scripts/compose-smoke runs the stack",
    ("docs/DOCKER.md", "docker"): "Docker: scripts/compose-smoke runs the stack",
    ("docs/DOCKER.md", "localhost:9092"): "needs the compose stack's Kafka on localhost:9092",
    ("docs/DOCKER.md", "scripts/compose-smoke"): "scripts/test runs it",
    ("README.md", "cmake --install"): "installs into ~/.local or /usr/local; "
                                      "tests/e2e/pkgconfig_test.sh installs under a prefix",
    ("docs/ADDING-A-CONSUMER.md", "scripts/new-consumer"): "tests/e2e/scaffold_test.sh runs it, "
                                                           "in the tree and with --dir",
    ("docs/ADDING-A-CONSUMER.md", "scripts/build"): "rebuilds evkit; scripts/test builds it",
    ("docs/ADDING-A-CONSUMER.md", "cc fraud-check.c"): "needs the scaffolded fraud-check.c",
    ("docs/ADDING-A-CONSUMER.md", "build/consumers/fraud-check"): "needs the scaffolded "
                                                                  "fraud-check",
    ("docs/PERFORMANCE.md", "scripts/bench"): "minutes; the benchmark itself",
    ("docs/PERFORMANCE.md", "--count 100000 --rate 1000"): "100 s at 1,000 orders/s",
}


def paragraphs(path):
    """(line number, [lines]) of each code paragraph: indented 4+ or fenced."""
    out, cur, fenced = [], None, False
    for no, line in enumerate(open(path, encoding="utf-8").read().split("\n"), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            cur = None
            continue
        code = fenced or (line.startswith("    ") and line.strip())
        if code:
            if cur is None:
                cur = (no, [])
                out.append(cur)
            cur[1].append(line.strip())
        elif not line.strip() and cur is not None and not fenced:
            cur = None
    return out


def commands(lines):
    """The command lines of a paragraph, continuations joined."""
    cmds, i = [], 0
    while i < len(lines):
        line = lines[i][2:] if lines[i].startswith("$ ") else lines[i]
        i += 1
        if not COMMAND.match(line) or NOT_COMMAND.search(line):
            continue
        while (line.endswith("\\") or line.endswith("|")) and i < len(lines):
            line += "\n" + lines[i]
            i += 1
        cmds.append(re.sub(r"\s{2,}#[^\"'\n]*$", "", line))
    return cmds


def as_run(cmd, placed):
    """The two rewrites (module docstring)."""
    cmd = cmd.replace("o-...", f'"$(tail -n 1 {placed})"').replace(
        "o-…", f'"$(tail -n 1 {placed})"')
    if re.search(r"\bplace\b", cmd) and "evk-order" in cmd:
        return f"{cmd} | tee -a {placed}"
    if re.search(r"\bstatus\b", cmd) and "evk-order" in cmd:
        return again_while(cmd, 6)
    if re.search(r"\blag\b", cmd) and "evk-admin" in cmd:
        return again_while(cmd, 5)
    return cmd


def again_while(cmd, code):
    """@cmd repeated for up to 20 s while it exits with @code."""
    return (f"for try in $(seq 100); do rc=0; {cmd} || rc=$?; "
            f"[ $rc -eq {code} ] || break; sleep 0.2; done; [ $rc -eq 0 ]")


class Walk:
    def __init__(self, work):
        self.repo, self.flow = os.path.join(work, "repo"), False
        os.mkdir(self.repo)
        files = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=SRC,
                               capture_output=True, check=True).stdout.split(b"\0")
        for f in filter(None, files):
            src = os.path.join(SRC, f.decode())
            if os.path.isfile(src):
                dst = os.path.join(self.repo, f.decode())
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(src, dst)
        os.symlink(BIN, os.path.join(self.repo, "build"))
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("EVK_BOOTSTRAP_SERVERS", "EVK_CONFIG", "EVK_BIN_DIR",
                                 "EVK_SCHEMAS_DIR")}
        self.env["PATH"] = ":".join(os.path.join(BIN, d) for d in ("lib", "producers",
                                                                  "consumers"))
        self.env["PATH"] += ":" + os.environ["PATH"]
        self.placed = os.path.join(work, "placed")
        self.failures, self.ran, self.skipped = [], 0, 0

    def services(self, action):
        args = [os.path.join(self.repo, "scripts/start-services")] + ([action] if action else [])
        r = subprocess.run(args, cwd=self.repo, env=self.env, capture_output=True, text=True,
                           timeout=120)
        if r.returncode:
            raise SystemExit(f"start-services {action}: {r.stderr}")
        self.flow = not action

    def run(self, doc, no, cmds):
        text = "\n".join(cmds)
        starts = any(re.match(r"scripts/start-services(\s|$)(?!stop)", c) for c in cmds)
        if starts and self.flow:
            self.services("stop")
        elif not starts and "run/bootstrap" in text and not self.flow:
            self.services(None)
        open(self.placed, "w").close()
        script = "set -eo pipefail\n" + "\n".join(as_run(c, self.placed) for c in cmds) + "\n"
        t0 = time.monotonic()
        # Output to a file, not a pipe: what the paragraph leaves running in
        # the background (a broker, a service copy) would hold a pipe open.
        with tempfile.TemporaryFile("w+") as log:
            p = subprocess.Popen(["bash", "-c", script], cwd=self.repo, env=self.env,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                log.write("(timed out after 120 s)\n")
            finally:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                p.wait()
            log.seek(0)
            out = log.read()
        if starts:
            self.services("stop")
        self.ran += 1
        ok = p.returncode == 0
        print(("ok   " if ok else "FAIL ") +
              f"{doc}:{no}: {cmds[0][:80]} ({time.monotonic() - t0:.1f} s)")
        if not ok:
            self.failures.append(f"{doc}:{no}")
            print("     " + "\n     ".join(out.strip().split("\n")[-15:]))

    def walk(self):
        for doc in ["README.md"] + sorted(os.path.relpath(p, SRC)
                                          for p in glob.glob(os.path.join(SRC, "docs/*.md"))):
            for no, lines in paragraphs(os.path.join(SRC, doc)):
                cmds = commands(lines)
                if not cmds:
                    continue
                text = "\n".join(cmds)
                why = [r for (d, what), r in SKIP.items() if d == doc and what in text]
                if why:
                    self.skipped += 1
                    print(f"skip {doc}:{no}: {cmds[0][:60]}: {why[0]}")
                    continue
                self.run(doc, no, cmds)
        if self.flow:
            self.services("stop")


def main():
    with tempfile.TemporaryDirectory(prefix="evk-docs-") as work:
        w = Walk(work)
        try:
            w.walk()
        finally:
            if w.flow:
                w.services("stop")
    print(f"{w.ran} paragraphs run, {w.skipped} skipped (reasons above), "
          f"{len(w.failures)} failed")
    return 1 if w.failures or not w.ran else 0


if __name__ == "__main__":
    sys.exit(main())
