"""The release recipe: deploy/dist.sh (`make dist`) writes a sha256 that matches the filter, and
deploy/oci.sh (`make oci`) reports clearly when it could not build anything."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from deploy_helpers import REPO, find_wasm

DIST = REPO / "deploy" / "dist.sh"
OCI = REPO / "deploy" / "oci.sh"


def _run(script: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script)], cwd=REPO, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def test_dist_writes_a_sha256_that_matches_the_filter(tmp_path: Path) -> None:
    wasm = find_wasm()
    out_dir = tmp_path / "dist"
    result = _run(DIST, DIST_DIR=str(out_dir))
    assert result.returncode == 0, result.stdout + result.stderr

    copied = out_dir / "gateway_filter.wasm"
    assert copied.read_bytes() == wasm.read_bytes()
    expected = hashlib.sha256(wasm.read_bytes()).hexdigest()

    line = (out_dir / "gateway_filter.wasm.sha256").read_text()
    assert line == f"{expected}  gateway_filter.wasm\n"          # sha256sum's own format
    sha256sum = subprocess.run(["sha256sum", "gateway_filter.wasm"], cwd=out_dir,
                               capture_output=True, text=True, check=True).stdout
    assert sha256sum == line
    check = subprocess.run(["sha256sum", "-c", "gateway_filter.wasm.sha256"], cwd=out_dir,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # It tells the operator where the digest goes.
    assert expected in result.stdout
    assert "vm_config.code.remote.sha256" in result.stdout and "WasmPlugin.spec.sha256" in result.stdout


def test_dist_refuses_a_missing_filter(tmp_path: Path) -> None:
    result = _run(DIST, WASM=str(tmp_path / "nothing.wasm"), DIST_DIR=str(tmp_path / "dist"))
    assert result.returncode != 0
    assert "make build" in result.stderr
    assert not (tmp_path / "dist" / "gateway_filter.wasm.sha256").exists()


def test_oci_without_a_builder_says_nothing_was_built() -> None:
    find_wasm()
    result = _run(OCI, OCI_BUILDER="no-such-builder", IMAGE="registry.example.com/gateway-filter:test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "NOTHING WAS BUILT" in result.stdout
    assert "docker build -f deploy/Dockerfile -t registry.example.com/gateway-filter:test ." in result.stdout


def test_dockerfile_has_the_layout_image_fetchers_expect() -> None:
    lines = [l.strip() for l in (REPO / "deploy" / "Dockerfile").read_text().splitlines()
             if l.strip() and not l.lstrip().startswith("#")]
    assert lines[0] == "FROM scratch"
    assert "COPY dist/gateway_filter.wasm ./plugin.wasm" in lines


def test_oci_builds_from_a_context_holding_only_the_module(tmp_path: Path) -> None:
    """With a (stub) docker whose daemon answers, oci.sh runs `docker build -f deploy/Dockerfile -t
    <image> <context>`, the context holding dist/gateway_filter.wasm and nothing else."""
    wasm = find_wasm()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record"
    stub = bin_dir / "docker"
    stub.write_text(
        "#!/usr/bin/env bash\n"
        "set -e\n"
        '[ "$1" = info ] && exit 0\n'
        f'printf "%s\\n" "$@" > "{record}"\n'
        'ctx="${@: -1}"\n'
        f'(cd "$ctx" && find . -type f | sort) > "{record}.files"\n'
        f'cp "$ctx/dist/gateway_filter.wasm" "{record}.wasm"\n'
    )
    stub.chmod(0o755)
    result = _run(OCI, OCI_BUILDER="docker", IMAGE="registry.example.com/gateway-filter:test",
                  PATH=f"{bin_dir}:{os.environ['PATH']}")
    assert result.returncode == 0, result.stdout + result.stderr
    args = record.read_text().splitlines()
    assert args[:5] == ["build", "-f", "deploy/Dockerfile", "-t", "registry.example.com/gateway-filter:test"]
    assert (tmp_path / "record.files").read_text().splitlines() == ["./dist/gateway_filter.wasm"]
    assert (tmp_path / "record.wasm").read_bytes() == wasm.read_bytes()
    assert "Nothing was pushed" in result.stdout
    assert not Path(args[5]).exists(), "the temporary build context was left behind"
