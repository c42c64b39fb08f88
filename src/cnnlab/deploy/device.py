"""Where a benchmark ran: CPU, Jetson board and power mode, library versions (for report headers)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (x86 ``model name``; ARM boards fall back to the machine type)."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return name


def jetson_info() -> dict[str, str]:
    """Board, L4T release and nvpmodel power mode on an NVIDIA Jetson; empty elsewhere."""
    info: dict[str, str] = {}
    model = Path("/proc/device-tree/model")
    if model.is_file():
        text = model.read_bytes().rstrip(b"\0").decode(errors="replace").strip()
        if "jetson" in text.lower() or "nvidia" in text.lower():
            info["board"] = text
    release = Path("/etc/nv_tegra_release")
    if release.is_file():
        info["l4t"] = release.read_text(errors="replace").splitlines()[0].strip("# ").strip()
    if info and shutil.which("nvpmodel"):
        try:
            out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=5).stdout
            mode = [ln.strip() for ln in out.splitlines() if ln.strip()]
            if mode:
                info["power_mode"] = " ".join(mode[:2])
        except (OSError, subprocess.SubprocessError):
            pass
    return info


def device_info() -> str:
    """One line: CPU, cores, OS and, on a Jetson, the board and power mode."""
    parts = [f"{cpu_name()}, {os.cpu_count()} logical cores, {platform.system()} {platform.machine()}"]
    j = jetson_info()
    if j:
        parts.append(", ".join(f"{k} {v}" for k, v in j.items()))
    return "; ".join(parts)


def library_versions() -> dict[str, str]:
    """Versions of cnnlab, Python and the libraries that decide the timings."""
    import importlib.metadata as md

    from cnnlab import __version__

    out = {"cnnlab": __version__, "python": platform.python_version()}
    for pkg in ("torch", "onnxruntime", "onnx", "numpy"):
        for dist in (pkg, f"{pkg}-gpu"):
            try:
                out[pkg] = md.version(dist)
                break
            except md.PackageNotFoundError:
                continue
    return out
