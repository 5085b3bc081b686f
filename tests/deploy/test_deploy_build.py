"""The build's last step, tools/trim_exports.py: the module `make build` ships exports exactly the
callbacks the filter implements, and the tool refuses what it cannot trim safely."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from deploy_helpers import REPO, find_wasm

sys.path.insert(0, str(REPO / "tools"))
import trim_exports  # noqa: E402

# What Envoy needs from the module: the ABI marker, memory and its allocator, and every callback
# the filter's root and HTTP contexts implement (src/plugin/root.rs, src/plugin/http.rs).
NEEDED = {"proxy_abi_version_0_2_1", "memory", "proxy_on_memory_allocate", "proxy_on_context_create",
          "proxy_on_vm_start", "proxy_on_configure", "proxy_on_tick", "proxy_on_request_headers",
          "proxy_on_http_call_response", "proxy_on_delete",
          # the usage record (src/plugin/usage.rs) and models (src/plugin/models.rs): request and
          # answer bodies, request trailers (the end of a body), answer headers, the end
          "proxy_on_request_body", "proxy_on_request_trailers", "proxy_on_response_headers",
          "proxy_on_response_body", "proxy_on_log"}
# The SDK trait methods behind the trimmed callbacks: implementing one of them would be dead code.
TRIMMED_METHODS = {"on_http_response_trailers", "on_done"}


def module_with_exports(*names: str) -> bytes:
    """A minimal module: one function (type () -> ()) exported under each name."""
    def vec(items: list[bytes]) -> bytes:
        return trim_exports.to_leb(len(items)) + b"".join(items)

    def section(sid: int, content: bytes) -> bytes:
        return bytes([sid]) + trim_exports.to_leb(len(content)) + content

    exports = [trim_exports.to_leb(len(n)) + n.encode() + b"\x00\x00" for n in names]
    return (b"\0asm\x01\0\0\0" + section(1, vec([b"\x60\x00\x00"])) + section(3, vec([b"\x00"]))
            + section(7, vec(exports)) + section(10, vec([b"\x02\x00\x0b"])))


def test_shipped_module_exports_what_the_filter_implements_and_nothing_trimmed() -> None:
    names = set(trim_exports.export_names(find_wasm().read_bytes()))
    assert NEEDED <= names, f"missing exports: {NEEDED - names}"
    assert not names & trim_exports.UNUSED, f"not trimmed: {names & trim_exports.UNUSED}"


def test_filter_implements_none_of_the_trimmed_callbacks() -> None:
    assert len(TRIMMED_METHODS) == len(trim_exports.UNUSED)
    for path in (REPO / "src").rglob("*.rs"):
        found = set(re.findall(r"\bfn (on_[a-z_]+)\s*\(", path.read_text())) & TRIMMED_METHODS
        assert not found, f"{path.relative_to(REPO)} implements {found}, whose export is trimmed"


def test_trim_removes_only_the_unused_callbacks() -> None:
    module = module_with_exports("proxy_on_request_headers", *sorted(trim_exports.UNUSED), "memory")
    trimmed = trim_exports.trim(module)
    assert trim_exports.export_names(trimmed) == ["proxy_on_request_headers", "memory"]
    assert len(trimmed) < len(module)


def test_trim_refuses_a_module_without_the_sdk_exports() -> None:
    with pytest.raises(ValueError, match="exports not found"):
        trim_exports.trim(module_with_exports("proxy_on_request_headers"))


def test_trim_refuses_what_is_not_wasm() -> None:
    with pytest.raises(ValueError, match="not a Wasm module"):
        trim_exports.trim(b"\x7fELF\x02\x01\x01\0")


def test_tool_writes_nothing_when_it_refuses(tmp_path: Path) -> None:
    source, out = tmp_path / "in.wasm", tmp_path / "out.wasm"
    source.write_bytes(module_with_exports("proxy_on_request_headers"))
    result = subprocess.run([sys.executable, str(REPO / "tools" / "trim_exports.py"), str(source), str(out)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "exports not found" in result.stderr
    assert not out.exists()
