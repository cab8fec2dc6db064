"""The test servers' own start-up (tests/servers.py)."""

from __future__ import annotations

import socket


def test_seaweedfs_starts_again_on_new_ports_when_one_was_taken(tmp_path, monkeypatch):
    """`free_port` hands a port back before weed binds it; here the S3 gateway's gRPC port of the
    first try is held by another socket, as another program could take it: weed exits with "address
    already in use" and a second set of ports is tried, in a data folder of its own."""
    import servers

    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    calls: list[int] = []
    real = servers.free_port

    def picked() -> int:
        calls.append(1)
        return held.getsockname()[1] if len(calls) == 8 else real()  # the 8th: the s3 gateway's gRPC port

    monkeypatch.setattr(servers, "free_port", picked)
    try:
        with servers.seaweedfs_at(tmp_path) as server:
            info = server.filesystem().get_file_info("flywheel")
    finally:
        held.close()
    assert info.type.name == "Directory"
    assert len(calls) == 16 and (tmp_path / "data-1").is_dir()
    assert "address already in use" not in (tmp_path / "weed.log").read_text(errors="replace")
