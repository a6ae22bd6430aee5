"""One set of conventions (issue #15): global options anywhere, -o is a format, metavars, one-line errors,
the daemon's socket paths. The fuzz over every option is in test_cli_fuzz.py."""

from __future__ import annotations

import http.server
import io
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import typer

from terwayctl.cli import app as app_module
from terwayctl.cli.app import full_command, lift_global_options
from terwayctl.cli.context import GlobalOptions
from terwayctl.cli.docgen import walk
from terwayctl.cloud.sdk import connection_failure
from terwayctl.core.errors import InvalidInput
from tests.fixtures.kube import RunningKubeApi, write_kubeconfig

ROOT = full_command()
LEAVES = [path[1:] for path, command in walk(ROOT) if not hasattr(command, "commands")]
GROUPS = [path[1:] for path, command in walk(ROOT) if hasattr(command, "commands") and len(path) > 1]
# every global option with a value that is valid everywhere, and the GlobalOptions field it sets
GLOBALS: list[tuple[list[str], str, object]] = [
    (["--kubeconfig", "/nonexistent/kubeconfig"], "kubeconfig", "/nonexistent/kubeconfig"),
    (["--kubeconfig=/nonexistent/k2"], "kubeconfig", "/nonexistent/k2"),
    (["--context", "ctx-a"], "context", "ctx-a"),
    (["--namespace", "ns-a"], "namespace", "ns-a"),
    (["-n", "ns-b"], "namespace", "ns-b"),
    (["-nns-c"], "namespace", "ns-c"),
    (["--region", "cn-beijing"], "region", "cn-beijing"),
    (["--profile", "prof-a"], "profile", "prof-a"),
    (["--endpoint", "http://127.0.0.1:9"], "endpoint", "http://127.0.0.1:9"),
    (["--debug"], "debug", True),
]


def _ids(paths: list[tuple[str, ...]]) -> list[str]:
    return [" ".join(p) for p in paths]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[GlobalOptions]:
    """The GlobalOptions the root callback built, for each run."""
    seen: list[GlobalOptions] = []

    def record(**kwargs: Any) -> GlobalOptions:
        seen.append(GlobalOptions(**kwargs))
        return seen[-1]

    monkeypatch.setattr(app_module, "GlobalOptions", record)
    return seen


def quiet_run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = app_module.run(list(args))
    return code, out.getvalue(), err.getvalue()


# --- 1. global options anywhere ---------------------------------------------------------------------


@pytest.mark.parametrize("path", LEAVES + GROUPS, ids=_ids(LEAVES + GROUPS))
@pytest.mark.parametrize(("option", "field", "value"), GLOBALS, ids=[" ".join(g[0]) for g in GLOBALS])
def test_global_option_lifted_from_every_position(path: tuple[str, ...], option: list[str], field: str,
                                                  value: object) -> None:
    for cut in range(len(path) + 1):
        args = [*path[:cut], *option, *path[cut:], "--help"]
        lifted = lift_global_options(ROOT, args)
        assert lifted == [*option, *path, "--help"], args


@pytest.mark.parametrize("path", LEAVES + GROUPS, ids=_ids(LEAVES + GROUPS))
def test_every_global_option_after_every_command_reaches_the_root(path: tuple[str, ...],
                                                                  recorded: list[GlobalOptions]) -> None:
    args = [*path]
    for option, _, _ in GLOBALS[2:]:  # one --kubeconfig spelling: both set the same field
        args += option
    code, _, err = quiet_run(*args, "--kubeconfig", "/nonexistent/kubeconfig", "--help")
    assert code == 0, err
    assert recorded[-1] == GlobalOptions(kubeconfig="/nonexistent/kubeconfig", context="ctx-a", namespace="ns-c",
                                         region="cn-beijing", profile="prof-a", endpoint="http://127.0.0.1:9",
                                         debug=True)


def test_values_and_double_dash_are_kept() -> None:
    # an option's value that looks like a global option is the option's value
    assert lift_global_options(ROOT, ["render", "--set", "--region", "-n", "x"]) == \
        ["-n", "x", "render", "--set", "--region"]
    # after --, nothing moves; lab exec passes its command's options through
    assert lift_global_options(ROOT, ["lab", "exec", "node1", "--", "ip", "-n", "x"]) == \
        ["lab", "exec", "node1", "--", "ip", "-n", "x"]
    assert lift_global_options(ROOT, ["lab", "exec", "node1", "ip", "-n", "x"]) == \
        ["lab", "exec", "node1", "ip", "-n", "x"]
    assert lift_global_options(ROOT, ["capacity", "ecs.g6.xlarge", "--region=cn-beijing", "-o", "json"]) == \
        ["--region=cn-beijing", "capacity", "ecs.g6.xlarge", "-o", "json"]


def test_no_subcommand_redefines_a_global_option() -> None:
    names = {opt for param in ROOT.params for opt in param.opts}
    for path, command in walk(ROOT):
        if len(path) > 1:
            for param in command.params:
                assert not set(param.opts) & names, f"{' '.join(path)} {param.opts} shadows a global option"


def test_real_runs_with_global_options_after_the_command(cli: Any, kube_api: RunningKubeApi) -> None:
    kubeconfig = str(kube_api.kubeconfig)
    result = cli("capacity", "--cluster", "--kubeconfig", kubeconfig, "-o", "json")
    assert (result.exit_code, result.stdout) == (0, "[]\n"), result.stderr
    result = cli("vswitch", "list", "-n", "elsewhere", "--kubeconfig", kubeconfig)
    assert result.exit_code == 2
    assert "elsewhere/eni-config does not exist" in result.stderr
    result = cli("render", "--set", "security_groups=sg-bp1aaa", "--region", "cn-beijing", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert '\\"region_id\\": \\"cn-beijing\\"' in result.stdout or "cn-beijing" in result.stdout


def test_daemon_status_takes_its_socket_after_status(cli: Any, tmp_path: Path) -> None:
    missing = tmp_path / "no.sock"
    result = cli("daemon", "status", "--socket", str(missing))
    assert result.exit_code == 1
    assert str(missing) in result.stderr.splitlines()[0]
    before = cli("daemon", "--socket", str(missing), "status")
    assert before.stderr == result.stderr


# --- 2. -o is a format; files and directories have their own options; metavars ------------------------


def test_every_output_option_is_a_format() -> None:
    for path, command in walk(ROOT):
        for param in command.params:
            if "--output" in param.opts and not param.hidden:
                choices = set(getattr(param.type, "choices", None) or ())
                if path[1:] == ("render",):
                    assert param.metavar == "FORMAT"
                    continue
                assert choices and choices <= {"table", "json", "yaml", "csv"}, (path, choices)
                assert "-o" in param.opts


def test_render_formats_and_directory(cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    sg = ("--set", "security_groups=sg-bp1aaa")
    as_json = cli("render", *sg, "-o", "json")
    assert as_json.exit_code == 0 and as_json.stdout.lstrip().startswith("{")
    assert not (tmp_path / "json").exists()
    assert cli("render", *sg, "-o", "yaml").stdout == cli("render", *sg).stdout
    written = cli("render", *sg, "--dir", "out")
    assert written.exit_code == 0 and "deprecated" not in written.stderr
    assert (tmp_path / "out" / "01-serviceaccount-terway.yaml").exists()
    old = cli("render", *sg, "-o", "old")
    assert old.exit_code == 0
    assert "warning: 'render -o old' (a directory) is deprecated" in old.stderr
    assert "--dir old" in old.stderr
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == sorted(p.name for p in (tmp_path / "out").iterdir())
    dash = cli("render", *sg, "-o", "-")
    assert dash.stdout == cli("render", *sg).stdout and "deprecated" in dash.stderr
    for bad in (["-o", "table"], ["-o", "json", "--dir", "x"]):
        refused = cli("render", *sg, *bad)
        assert refused.exit_code == 2 and refused.stderr.startswith("error: ")


def test_catalog_refresh_old_output_spelling(cli: Any) -> None:
    result = cli("catalog", "refresh", "-o", "json")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --output json: refresh writes a CSV file")


def test_help_shows_real_metavars() -> None:
    for path, _command in walk(ROOT):
        code, out, err = quiet_run(*path[1:], "--help")
        assert code == 0, err
        for generic in ("<str>", "<int", "<float", "<path>", "<text>", "<integer"):
            assert generic not in out, f"{' '.join(path)} --help shows {generic}"
    code, out, _ = quiet_run("plan", "check", "--help")
    assert "CIDR" in out and "FACTOR" in out and "N" in out
    code, out, _ = quiet_run("vswitch", "add", "--help")
    assert "DURATION" in out and "VSWITCH_ID..." in out


def test_lab_pod_add_takes_the_lab_as_lab(cli: Any) -> None:
    new = cli("lab", "pod", "add", "web", "--node", "node1", "--lab", "nolab")
    assert new.exit_code == 2 and "lab nolab is not up" in new.stderr and "deprecated" not in new.stderr
    old = cli("lab", "pod", "add", "web", "--node", "node1", "--name", "nolab")
    assert old.exit_code == 2 and "lab nolab is not up" in old.stderr
    assert old.stderr.startswith("warning: 'lab pod ... --name' (the lab's name) is deprecated")


# --- 3. one-line errors that name the endpoint; deadlines --------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[str]:
    """Accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
def web_server() -> Iterator[str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def refused_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


def test_kube_api_that_never_answers_fails_within_the_deadline(cli: Any, tmp_path: Path, silent_server: str) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kc", silent_server)
    started = time.monotonic()
    result = cli("vswitch", "list", "--kubeconfig", str(kubeconfig))
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (f"error: cannot reach the Kubernetes API server at {silent_server}: "
                                             "connected, but no answer to API discovery in 5 s")


def test_kube_api_that_is_a_web_server_or_refuses(cli: Any, tmp_path: Path, web_server: str) -> None:
    result = cli("capacity", "--cluster", "--kubeconfig", str(write_kubeconfig(tmp_path / "kc", web_server)))
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (f"error: {web_server} is not a Kubernetes API server: "
                                             "it answered API discovery with HTTP 404")
    url = refused_url()
    result = cli("capacity", "--cluster", "--kubeconfig", str(write_kubeconfig(tmp_path / "kc2", url)))
    assert result.stderr.splitlines()[0] == f"error: cannot reach the Kubernetes API server at {url}: connection refused"


@pytest.fixture
def fake_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIexamplekey")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "examplesecret")


def test_cloud_endpoint_refused_is_one_short_line(cli: Any, fake_keys: None) -> None:
    url = refused_url()
    result = cli("catalog", "refresh", "--region", "cn-hangzhou", "--endpoint", url)
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: cannot reach the DescribeInstanceTypes endpoint {url}: connection refused")
    assert len(first) < 200 and "Signature" not in result.stderr and "HTTPConnection" not in result.stderr
    assert len(result.stderr.splitlines()) == 2  # error: and hint:


def test_cloud_endpoint_that_is_a_web_server(cli: Any, fake_keys: None, web_server: str) -> None:
    result = cli("catalog", "refresh", "--region", "cn-hangzhou", "--endpoint", web_server)
    assert result.exit_code == 1
    first = result.stderr.splitlines()[0]
    assert f"{web_server.removeprefix('http://')} is not an Alibaba Cloud API endpoint" in first
    assert "<html" not in result.stderr.lower() and len(result.stderr.splitlines()) == 2


@pytest.mark.parametrize(("text", "said"), [
    ("HTTPConnectionPool(host='h', port=1): Max retries exceeded with url: /?Signature=x (Caused by "
     "NewConnectionError('<...HTTPConnection object at 0x7f>: Failed to establish a new connection: "
     "[Errno 111] Connection refused'))", "connection refused"),
    ("HTTPConnectionPool(host='h', port=1): Read timed out. (read timeout=10.0)", "connected, but no answer in 10 s"),
    ("HTTPSConnectionPool(host='h', port=443): Max retries exceeded (Caused by ConnectTimeoutError(..., "
     "'Connection to h timed out. (connect timeout=5.0)'))", "no answer to the connection in 5 s"),
    ("... NameResolutionError(\"<...>: Failed to resolve 'x' ([Errno -2] Name or service not known)\")",
     "the host name does not resolve"),
])
def test_connection_failure_in_a_few_words(text: str, said: str) -> None:
    assert connection_failure(text) == said


# --- 5. the daemon's socket paths: remove only a stale socket -----------------------------------------


def _listening(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(1)
    return sock


def test_remove_stale_socket(tmp_path: Path) -> None:
    from terwayctl.node.server import remove_stale_socket

    stale = tmp_path / "stale.sock"
    _listening(stale).close()  # bound, then nobody listens: stale
    remove_stale_socket(stale, "--socket")
    assert not stale.exists()
    remove_stale_socket(tmp_path / "absent.sock", "--socket")

    live = tmp_path / "live.sock"
    server = _listening(live)
    try:
        with pytest.raises(InvalidInput, match="another process is listening"):
            remove_stale_socket(live, "--socket")
        assert live.exists()
    finally:
        server.close()

    regular = tmp_path / "passwd"
    regular.write_text("root:x:0:0\n", encoding="utf-8")
    directory = tmp_path / "dir"
    directory.mkdir()
    link = tmp_path / "link.sock"
    link.symlink_to(stale)
    for path, kind in ((regular, "a regular file"), (directory, "a directory"), (link, "a symbolic link")):
        with pytest.raises(InvalidInput, match=kind):
            remove_stale_socket(path, "--metrics")
        assert path.is_symlink() or path.exists()
    assert regular.read_text(encoding="utf-8") == "root:x:0:0\n"


def test_socket_and_metrics_servers_refuse_a_regular_file(tmp_path: Path) -> None:
    from terwayctl.node.server import MetricsServer, SocketServer

    victim = tmp_path / "victim"
    victim.write_text("keep me", encoding="utf-8")
    with pytest.raises(InvalidInput, match=r"--socket .* regular file"):
        SocketServer(daemon=None, path=victim).start()  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"--metrics .* regular file"):
        MetricsServer(f"unix:{victim}", lambda: "")
    assert victim.read_text(encoding="utf-8") == "keep me"


def test_invalid_input_exits_2_through_the_cli() -> None:
    """The server's refusals are InvalidInput: exit 2 with the reason (as every other bad input)."""
    from terwayctl.cli.errors import run_guarded

    def refuse() -> object:
        raise InvalidInput("--socket /etc/passwd exists and is a regular file; refusing to replace it")

    err = io.StringIO()
    with redirect_stderr(err):
        assert run_guarded(refuse, debug=False) == 2
    assert err.getvalue().startswith("error: --socket /etc/passwd")


# --- 7. plan and plan check agree; natural sort; legends -----------------------------------------------


def test_plan_output_passes_plan_check_with_the_same_nodes(cli: Any) -> None:
    import json

    planned = json.loads(cli("plan", "--zones", "z1", "--nodes", "300", "--pods-per-node", "30", "-o", "json").stdout)
    node = [v["cidr"] for v in planned["vswitches"] if v["role"] == "node"]
    pod = [v["cidr"] for v in planned["vswitches"] if v["role"] == "pod"]
    args = ["--vpc", planned["vpc"], "--node-vswitch", ",".join(node), "--pod-vswitch", ",".join(pod),
            "--service-cidr", planned["service_cidr"], "--nodes", "300", "--pods-per-node", "30"]
    checked = cli("plan", "check", *args)
    assert checked.exit_code == 0, checked.stdout
    assert "(300 nodes x 30 pods x growth 2)" in checked.stdout  # the same default growth as plan


def test_natural_sort_and_only_the_legends_that_appear(cli: Any) -> None:
    result = cli("capacity", "--family", "ecs.g7", "--sort", "pods")
    names = [line.split()[0] for line in result.stdout.splitlines()[1:] if line.startswith("ecs.")]
    assert names.index("ecs.g7.4xlarge") < names.index("ecs.g7.16xlarge")
    assert names.index("ecs.g7.xlarge") < names.index("ecs.g7.2xlarge")
    big = cli("capacity", "ecs.g7.16xlarge", "--mode", "eniip")
    assert "ACK minimum" not in big.stdout and "? unknown" not in big.stdout
    small = cli("capacity", "ecs.g6.xlarge")
    assert "* below the ACK minimum" in small.stdout and "? unknown in the catalog" in small.stdout


def test_start_up_stays_lean() -> None:
    code = "import sys, terwayctl.cli.app as a; print(sorted(m for m in ('yaml', 'rich', 'kubernetes', 'jinja2') " \
           "if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_typer_is_the_cli_layer() -> None:
    assert isinstance(app_module.app, typer.Typer)


@pytest.mark.parametrize(("content", "said"), [
    ("[1, 2]\n", "not a kubeconfig"),
    ("a: [\n", "not valid YAML at line 2 column 1"),
])
def test_a_kubeconfig_that_is_not_one(cli: Any, tmp_path: Path, content: str, said: str) -> None:
    kubeconfig = tmp_path / "kc"
    kubeconfig.write_text(content, encoding="utf-8")
    result = cli("vswitch", "list", "--kubeconfig", str(kubeconfig))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"error: cannot use the kubeconfig {kubeconfig}: {said}")


def test_errors_are_one_line_each() -> None:
    from terwayctl.cli.errors import print_error

    out = io.StringIO()
    print_error("not valid YAML: while parsing\nexpected the node content\n  in line 2\n", "fix\nit", out)
    assert out.getvalue() == "error: not valid YAML: while parsing expected the node content in line 2\nhint: fix it\n"


def test_natural_text_order() -> None:
    from terwayctl.core.sorting import natural_text_key

    names = ["node10", "node2", "node1", "cn-hangzhou.192.168.0.10", "cn-hangzhou.192.168.0.9"]
    assert sorted(names, key=natural_text_key) == [
        "cn-hangzhou.192.168.0.9", "cn-hangzhou.192.168.0.10", "node1", "node2", "node10"]


def test_families_nodes_and_zones_are_in_natural_order() -> None:
    from terwayctl.cli.vswitch import vswitch_rows
    from terwayctl.core.catalog import Catalog
    from terwayctl.data import embedded_catalog
    from terwayctl.kube.reads import list_nodes

    families = embedded_catalog().families()
    assert families.index("ecs.g8i") < families.index("ecs.g9i")
    assert isinstance(embedded_catalog(), Catalog)

    class Nodes:
        def list(self, api_version: str, plural: str, label_selector: str = "") -> list[dict[str, object]]:
            return [{"metadata": {"name": name, "labels": {}}} for name in ("node10", "node2", "node1")]

    assert [n.name for n in list_nodes(Nodes())] == ["node1", "node2", "node10"]  # type: ignore[arg-type]
    rows = vswitch_rows({"zone-10": ["vsw-c"], "zone-9": ["vsw-b"]}, {}, {})
    assert [r.zone for r in rows] == ["zone-9", "zone-10"]
