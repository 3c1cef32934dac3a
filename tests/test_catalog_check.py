"""`notebook-bot catalog check` and the same check at start-up: problems as file:line: path: message."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bot.domain.catalog import Problem
from bot.domain.catalog_check import Source, check_catalog, key_lines, locate, shipped_source
from bot.run.cli import main
from bot.run.config import ConfigError, Settings, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of the first line containing `needle`."""
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    head, *lines = str(caught.value).splitlines()
    assert head.startswith("the configuration has")
    return lines


# --- finding keys in TOML text -----------------------------------------------------------------------
def test_key_lines_finds_tables_keys_inline_tables_and_array_items() -> None:
    text = textwrap.dedent(
        """\
        # a comment with [not.a.table] and key = 1
        title = "x = 1 [y]"
        [catalog.machines.n1-fast]   # trailing comment
        vcpus = 8
        gpu = { type = "t4", count = { nested = 1 } }
        "quoted.key" = 'a # b'
        dotted.inner = 2

        [catalog.gpus."odd key"]
        counts = [
          1,   # one
          2,
        ]
        note = \"\"\"
        fake = 1
        [fake.table]
        \"\"\"
        literal = '''
        other = 2'''
        when = 2026-09-15
        [[catalog.extra]]
        a = 1
        [[catalog.extra]]
        a = 2
        """
    )
    lines = key_lines(text)
    assert lines[("title",)] == 2
    assert lines[("catalog",)] == 3 and lines[("catalog", "machines", "n1-fast")] == 3
    assert lines[("catalog", "machines", "n1-fast", "vcpus")] == 4
    assert lines[("catalog", "machines", "n1-fast", "gpu", "type")] == 5
    assert lines[("catalog", "machines", "n1-fast", "gpu", "count", "nested")] == 5
    assert lines[("catalog", "machines", "n1-fast", "quoted.key")] == 6
    assert lines[("catalog", "machines", "n1-fast", "dotted", "inner")] == 7
    assert lines[("catalog", "gpus", "odd key", "counts")] == 10
    assert lines[("catalog", "gpus", "odd key", "counts", 1)] == 12
    assert lines[("catalog", "gpus", "odd key", "note")] == 14
    assert lines[("catalog", "gpus", "odd key", "literal")] == 18
    assert lines[("catalog", "gpus", "odd key", "when")] == 20
    assert lines[("catalog", "extra", 0, "a")] == 22 and lines[("catalog", "extra", 1, "a")] == 24
    assert ("fake",) not in lines and ("fake", "table") not in lines and ("other",) not in lines
    assert ("not", "a", "table") not in lines


def test_the_shipped_catalog_maps_every_entry_to_its_line() -> None:
    source = shipped_source()
    text = source.text.splitlines()
    for path, line in source.lines.items():
        if len(path) == 2 and isinstance(path[1], str):
            assert path[1] in text[line - 1], (path, line)
    assert text[source.lines[("gpus", "t4", "max_vcpus")] - 1].startswith("max_vcpus")


def test_a_problem_is_blamed_on_the_file_that_writes_it() -> None:
    shipped = Source("shipped.toml", "[gpus.t4]\ncounts = [1]\nmax_vcpus = { 1 = 48 }\n", ())
    admin = Source("admin.toml", "[catalog.gpus.t4]\ncounts = [1, 8]\n", ("catalog",), overrides=True)
    at = locate(Problem(("gpus", "t4", "max_vcpus"), "x", (("gpus", "t4", "counts"),)), [admin, shipped])
    assert (at.file, at.line, at.path) == ("admin.toml", 2, "catalog.gpus.t4.counts")
    at = locate(Problem(("gpus", "t4", "max_vcpus"), "x"), [admin, shipped])
    assert (at.file, at.line) == ("admin.toml", 1), "an admin's override of the entry is blamed"
    quiet = Source("admin.toml", "[access]\n", ("catalog",), overrides=True)
    at = locate(Problem(("gpus", "t4", "max_vcpus"), "x"), [quiet, shipped])
    assert (at.file, at.line, at.path) == ("shipped.toml", 3, "gpus.t4.max_vcpus")


# --- the check --------------------------------------------------------------------------------------
def test_the_shipped_catalog_and_a_sound_config_pass(tmp_path: Path, capsys) -> None:
    catalog, found = check_catalog({})
    assert found == [] and catalog is not None
    path = write(
        tmp_path,
        """
        [catalog.machines.n1-standard-2]
        vcpus = 2
        memory_gb = 7.5
        usd_per_hour = 0.095

        [catalog.environments.r-4]
        description = "R 4 in a custom container"
        container = { repository = "us-central1-docker.pkg.dev/{project}/notebook-environments/r-4" }
        """,
    )
    assert main(["catalog", "check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("catalog OK: 4 environments, 7 GPUs, 24 machine types") and str(path) in out


def test_unknown_keys_and_missing_prices_name_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [access]
        admins = ["U0ADMIN"]

        [catalog.machines.n1-fast]
        vcpus = 8
        memory_gb = 30

        [catalog.machines.e2-standard-4]
        usd_per_hur = 0.2

        [catalog.disk_types.extreme]
        api_name = "PD_EXTREME"
        """,
    )
    assert problems(path) == [
        f"{path}:4: catalog.machines.n1-fast.usd_per_hour: missing price (in USD)",
        f"{path}:9: catalog.machines.e2-standard-4.usd_per_hur: unknown key `usd_per_hur`. Did you mean "
        "`usd_per_hour`? Keys here: `vcpus`, `memory_gb`, `usd_per_hour`, `gpu`.",
        f"{path}:11: catalog.disk_types.extreme.usd_per_gb_month: missing price (in USD)",
    ]


def test_an_attached_gpu_without_a_price_is_found_where_it_is_declared(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [catalog.gpus.t4-vws]
        name = "NVIDIA T4 Virtual Workstation"
        accelerator = "NVIDIA_TESLA_T4_VWS"
        attach_to = "n1"
        counts = [1]
        max_vcpus = { 1 = 48 }
        """,
    )
    assert problems(path) == [
        f"{path}:4: catalog.gpus.t4-vws.attach_to: missing price: a GPU attached to n1 machines needs "
        "usd_per_hour (per GPU)"
    ]


@pytest.mark.parametrize(
    "snippet, needle, expected",
    [
        (
            "[catalog.machines.g2-tiny]\nvcpus = 2\nmemory_gb = 8\nusd_per_hour = 0.3\n"
            'gpu = { type = "t4", count = 1 }\n',
            "gpu =",
            "catalog.machines.g2-tiny.gpu.type: `t4` attaches to n1 machines, so `g2-tiny` can't carry it built in",
        ),
        (
            '[catalog.machines.g2-standard-8]\ngpu = { type = "a100", count = 1 }\n',
            "gpu =",
            "catalog.machines.g2-standard-8.gpu.type: `a100` (NVIDIA_TESLA_A100) comes only in a2 machine types, "
            "not in `g2-standard-8`",
        ),
        (
            "[catalog.machines.g2-bare]\nvcpus = 2\nmemory_gb = 8\nusd_per_hour = 0.3\n",
            "[catalog.machines.g2-bare]",
            "catalog.machines.g2-bare: g2 machine types always carry GPUs: give gpu = { type, count }",
        ),
        (
            '[catalog.gpus.p4]\nattach_to = "e2"\n',
            "attach_to",
            "catalog.gpus.p4.attach_to: NVIDIA_TESLA_P4 attaches only to n1 machines, not e2",
        ),
        (
            "[catalog.gpus.t4]\ncounts = [1, 2, 4, 8]\n",
            "counts",
            "catalog.gpus.t4.counts: max_vcpus has no entry for 8 GPU(s), which counts lists",
        ),
        (
            "[catalog.gpus.v100]\nmax_vcpus = { 1 = 2, 2 = 24, 4 = 48, 8 = 96 }\n",
            "max_vcpus",
            "catalog.gpus.v100.max_vcpus: no n1 machine type has at most 2 vCPUs, so 1× v100 can't be launched",
        ),
        (
            "[catalog.gpus.l4]\ncounts = [1, 2, 3, 4, 8]\n",
            "counts",
            "catalog.gpus.l4.counts: lists 3 GPU(s), but no machine type carries 3×l4",
        ),
        (
            "[catalog.machines.g2-odd]\nvcpus = 8\nmemory_gb = 32\nusd_per_hour = 1\n"
            "gpu = { type = 'l4', count = 3 }\n",
            "gpu =",
            "catalog.machines.g2-odd.gpu.count: 3× l4 is not one of gpus.l4.counts (1, 2, 4, 8)",
        ),
        (
            '[catalog.defaults]\nmachine = "g2-standard-4"\n',
            "machine =",
            "catalog.defaults.machine: `g2-standard-4` carries GPUs, but it is the machine for launches without one",
        ),
        (
            '[catalog.defaults]\ngpu_machine = "e2-standard-8"\n',
            "gpu_machine",
            "catalog.defaults.gpu_machine: `e2-standard-8` can't take an attached GPU; name a machine type of `n1`",
        ),
        (
            '[catalog.defaults]\nenvironment = "tf-9"\n',
            "environment",
            "catalog.defaults.environment: names `tf-9`, which is not in the catalog",
        ),
        (
            '[catalog.gpus.t4]\nreplacement = "l5"\n',
            "replacement",
            "catalog.gpus.t4.replacement: names unknown GPU `l5`",
        ),
        (
            '[catalog.environments.mine]\ndescription = "x"\naliases = ["tf"]\n'
            'vm_image = { project = "p", family = "f" }\n',
            "aliases",
            "catalog.environments.mine.aliases: the name `tf` is used by both `base` and `mine`",
        ),
        (
            '[catalog.environments.both]\ndescription = "x"\nvm_image = { project = "p", family = "f" }\n'
            'container = { repository = "r" }\n',
            "[catalog.environments.both]",
            "catalog.environments.both: give exactly one of vm_image or container",
        ),
    ],
)
def test_impossible_gpu_and_machine_pairs_name_the_admins_line(
    tmp_path: Path, snippet: str, needle: str, expected: str
) -> None:
    path = write(tmp_path, "[access]\nadmins = []\n\n" + snippet)
    assert problems(path) == [f"{path}:{line_of(path, needle)}: {expected}"]


def test_an_admin_change_that_breaks_shipped_entries_is_blamed_on_the_admin(tmp_path: Path) -> None:
    """Making L4 an attached GPU breaks the shipped G2 machine types: the admin's line is named."""
    path = write(tmp_path, '[catalog.gpus.l4]\nattach_to = "n1"\nusd_per_hour = 0.5\nmax_vcpus = { 1 = 96 }\n')
    lines = problems(path)
    assert all(line.startswith(f"{path}:") for line in lines), "nothing is blamed on the shipped catalog"
    attach = [line for line in lines if line.startswith(f"{path}:2: catalog.gpus.l4.attach_to: ")]
    assert len(attach) == 7 and "so `g2-standard-4` can't carry it built in" in attach[0]
    assert any("NVIDIA_L4 comes built into g2 machine types and can't be attached to n1 machines" in a for a in attach)
    assert f"{path}:4: catalog.gpus.l4.max_vcpus: max_vcpus has no entry for 2 GPU(s), which counts lists" in lines


def test_config_tables_outside_the_catalog_are_checked_too(tmp_path: Path) -> None:
    path = write(tmp_path, '[acess]\nadmins = ["U0ADMIN"]\n\n[policy]\nmax_notebooks_per_user = -1\n')
    lines = problems(path)
    assert lines[0].startswith(f"{path}:1: acess: unknown key `acess`. Did you mean `access`?")
    assert lines[1].startswith(f"{path}:5: policy.max_notebooks_per_user: Input should be greater than or equal to 0")


def test_toml_syntax_errors_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[policy]\nmax_notebooks_per_user = 3\nzone = us-central1-a\n")
    [line] = problems(path)
    assert line.startswith(f"{path}:3: not valid TOML: Invalid value")


# --- start-up refuses a broken config ---------------------------------------------------------------
BROKEN = "[catalog.machines.n1-fast]\nvcpus = 8\nmemory_gb = 30\n"


def test_catalog_check_exits_2_with_the_lines(tmp_path: Path, capsys) -> None:
    path = write(tmp_path, BROKEN)
    assert main(["catalog", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"notebook-bot: the configuration has 1 problem:\n{path}:1: catalog.machines.n1-fast.usd_per_hour" in err


def test_catalog_check_reads_the_config_from_the_environment(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("NOTEBOOK_BOT_CONFIG", str(write(tmp_path, BROKEN)))
    assert main(["catalog", "check"]) == 2
    assert "missing price" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["reconcile", "serve", "socket"])
def test_the_bot_refuses_to_start_on_a_broken_catalog(tmp_path: Path, monkeypatch, capsys, verb: str) -> None:
    path = write(tmp_path, BROKEN)
    monkeypatch.setenv("NOTEBOOK_BOT_CONFIG", str(path))
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.setenv("NOTEBOOK_BOT_STORE", "memory")
    assert main([verb]) == 2
    assert f"{path}:1: catalog.machines.n1-fast.usd_per_hour: missing price" in capsys.readouterr().err


def test_services_load_the_same_check(tmp_path: Path) -> None:
    """Services load the config on first use (start-up asks for it at once: check_config)."""
    from bot.run.services import Services

    services = Services(Settings(config_path=str(write(tmp_path, BROKEN))))
    with pytest.raises(ConfigError, match=r"config\.toml:1: catalog\.machines\.n1-fast"):
        services.check_config()


# --- custom containers ---------------------------------------------------------------------------
ENVIRONMENTS = Path(__file__).resolve().parent.parent / "environments"
WORKBENCH_BASES = (
    "us-docker.pkg.dev/deeplearning-platform-release/gcr.io/workbench-container:",
    "us-docker.pkg.dev/workbench-images/gcr.io/workbench-container-2606:",
)


def test_every_container_environment_has_a_recipe_on_a_workbench_base() -> None:
    from bot.domain.catalog import load_catalog

    containers = {k: e.container for k, e in load_catalog().environments.items() if e.container is not None}
    assert "tf-2-8" in containers
    for name, container in containers.items():
        repository, _, image = container.repository.rpartition("/")
        assert repository == "us-central1-docker.pkg.dev/{project}/notebook-environments", name
        dockerfile = (ENVIRONMENTS / image / "Dockerfile").read_text()
        base = next(line for line in dockerfile.splitlines() if line.startswith("ARG BASE_IMAGE="))
        assert base.removeprefix("ARG BASE_IMAGE=").startswith(WORKBENCH_BASES), name
        assert "FROM ${BASE_IMAGE}" in dockerfile


def test_tf_2_8_is_pinned_for_python_3_10() -> None:
    pins = {}
    for line in (ENVIRONMENTS / "tf-2-8" / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name] = version
    assert all(pins.values()), "every requirement is pinned exactly"
    assert pins["tensorflow"].startswith("2.8.") and pins["keras"].startswith("2.8.")
    version = {name: tuple(map(int, pins[name].split("."))) for name in ("protobuf", "numpy")}
    assert version["protobuf"] < (3, 20) and version["numpy"] < (1, 24)
    dockerfile = (ENVIRONMENTS / "tf-2-8" / "Dockerfile").read_text()
    assert "ARG PYTHON_VERSION=3.10" in dockerfile and "cudatoolkit=11.2" in dockerfile


def test_names_people_cannot_type_or_that_cannot_name_an_instance_are_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[catalog.environments.My_Env]\ndescription = "x"\nvm_image = { project = "p", family = "f" }\n',
    )
    assert problems(path) == [
        f"{path}:1: catalog.environments.My_Env: names are lowercase letters, digits and hyphens, "
        "starting with a letter"
    ]


def test_every_kind_of_problem_is_reported_at_once(tmp_path: Path) -> None:
    """The data's own contradictions (an N1-only GPU built into an e2 machine) and Google Cloud's facts
    (an A100 in a g2 machine) are two rounds of checks: a config with both hears of both."""
    path = write(
        tmp_path,
        """
        [catalog.machines.e2-standard-8]
        gpu = { type = "t4", count = 1 }

        [catalog.machines.g2-standard-8]
        gpu = { type = "a100", count = 1 }
        """,
    )
    assert problems(path) == [
        f"{path}:2: catalog.machines.e2-standard-8.gpu.type: `t4` attaches to n1 machines, so `e2-standard-8` "
        "can't carry it built in",
        f"{path}:5: catalog.machines.g2-standard-8.gpu.type: `a100` (NVIDIA_TESLA_A100) comes only in a2 machine "
        "types, not in `g2-standard-8`",
    ]
