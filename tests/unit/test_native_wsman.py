"""Sans-IO pieces of the native PSRP client: envelopes, replies, framing, encryption, caches."""

from __future__ import annotations

import base64
import uuid
import xml.etree.ElementTree as ET

import pytest
from pypsrp.exceptions import WinRMError, WSManFaultError

from fleetcheck.results import HostStatus
from fleetcheck.transports import wsman_client as wc
from fleetcheck.transports.errors import OutputTooLarge, classify

FAULT = b"""<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
 xmlns:f="http://schemas.microsoft.com/wbem/wsman/1/wsmanfault"><s:Header/><s:Body><s:Fault>
<s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:InternalError</s:Value></s:Subcode></s:Code>
<s:Reason><s:Text xml:lang="en-US">outer</s:Text></s:Reason>
<s:Detail><f:WSManFault Code="2147943418" Machine="srv01"><f:Message>
<f:ProviderFault provider="microsoft.powershell" path="C:\\x.dll">key marked for deletion</f:ProviderFault>
</f:Message></f:WSManFault></s:Detail></s:Fault></s:Body></s:Envelope>"""


def _reply(message_id: str, body: str = "") -> bytes:
    return (
        '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:rsp="http://schemas.microsoft.com/wbem/wsman/1/windows/shell">'
        f"<s:Header><a:RelatesTo>{message_id}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def test_envelope_is_namespaced_xml_with_headers_options_and_selector() -> None:
    env = wc.build_envelope(
        wc.ACTION_RECEIVE,
        to="http://10.0.0.1:5985/wsman?a=1&b=2",
        session_id="uuid:S",
        max_envelope=153600,
        timeout_s=7,
        shell_id="ABC",
        options=wc.RECEIVE_OPTIONS,
        body=wc.receive_body("CID"),
    )
    root = ET.fromstring(env.data)
    h = root.find("s:Header", wc.NS)
    assert h is not None
    assert h.findtext("wsa:Action", namespaces=wc.NS) == wc.ACTION_RECEIVE
    assert h.findtext("wsa:MessageID", namespaces=wc.NS) == env.message_id
    assert env.message_id.startswith("uuid:") and env.message_id[5:] == env.message_id[5:].upper()
    assert h.findtext("wsman:OperationTimeout", namespaces=wc.NS) == "PT7S"
    assert h.findtext("wsman:MaxEnvelopeSize", namespaces=wc.NS) == "153600"
    assert h.findtext("wsa:To", namespaces=wc.NS) == "http://10.0.0.1:5985/wsman?a=1&b=2"
    assert h.findtext("wsman:SelectorSet/wsman:Selector[@Name='ShellId']", namespaces=wc.NS) == "ABC"
    opt = h.find("wsman:OptionSet/wsman:Option", wc.NS)
    assert opt is not None and opt.attrib["Name"] == "WSMAN_CMDSHELL_OPTION_KEEPALIVE" and opt.text == "True"
    ds = root.find("s:Body/rsp:Receive/rsp:DesiredStream", wc.NS)
    assert ds is not None and ds.attrib["CommandId"] == "CID" and ds.text == "stdout"


def test_create_option_must_comply() -> None:
    env = wc.build_envelope(
        wc.ACTION_CREATE, to="x", session_id="s", max_envelope=1, timeout_s=0, options=wc.CREATE_OPTIONS
    )
    opt = ET.fromstring(env.data).find("s:Header/wsman:OptionSet/wsman:Option", wc.NS)
    assert opt is not None and opt.attrib == {"Name": "protocolversion", "MustComply": "true"}
    assert b"PT1S" in env.data  # never a zero timeout


def test_fault_parsed_like_pypsrp_and_classified() -> None:
    fault = wc.parse_fault(FAULT)
    assert isinstance(fault, WSManFaultError)
    assert fault.code == 2147943418 and fault.machine == "srv01"
    assert fault.provider == "microsoft.powershell" and fault.provider_fault == "key marked for deletion"
    failure = classify(fault)
    assert (failure.status, failure.error_type) == (HostStatus.PROTOCOL_ERROR, "wsman_800703FA")


def test_fault_of_garbage_raises_parse_error() -> None:
    with pytest.raises(ET.ParseError):
        wc.parse_fault(b"<html>oops")


def test_reply_relates_to_checked_string_exact() -> None:
    root = wc.parse_reply(_reply("uuid:ABC"), "uuid:ABC")
    assert root.tag.endswith("Envelope")
    with pytest.raises(WinRMError, match="does not match"):
        wc.parse_reply(_reply("uuid:abc"), "uuid:ABC")


def test_receive_streams_concatenated_and_done() -> None:
    body = (
        "<rsp:ReceiveResponse>"
        f'<rsp:Stream Name="stdout" CommandId="C">{base64.b64encode(b"one").decode()}</rsp:Stream>'
        f'<rsp:Stream Name="stdout" CommandId="C">{base64.b64encode(b"two").decode()}</rsp:Stream>'
        '<rsp:CommandState CommandId="C" State="http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"/>'
        "</rsp:ReceiveResponse>"
    )
    data, done = wc.received_stdout(wc.parse_reply(_reply("m", body), "m"))
    assert (data, done) == (b"onetwo", True)
    with pytest.raises(WinRMError):
        wc.received_stdout(wc.parse_reply(_reply("m"), "m"))


def test_created_shell_id() -> None:
    body = (
        '<x:ResourceCreated xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" '
        'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><a:ReferenceParameters><w:SelectorSet>'
        '<w:Selector Name="ShellId">SID-1</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>'
    )
    assert wc.created_shell_id(wc.parse_reply(_reply("m", body), "m")) == "SID-1"
    with pytest.raises(WinRMError):
        wc.created_shell_id(wc.parse_reply(_reply("m"), "m"))


def _server_frame(msg_type: int, data: bytes, pid: uuid.UUID | None) -> bytes:
    import struct

    return struct.pack("<iI", 1, msg_type) + uuid.uuid4().bytes_le + (pid.bytes_le if pid else b"\0" * 16) + data


def test_fragments_roundtrip_across_payloads_in_order() -> None:
    pid = uuid.uuid4()
    big = _server_frame(wc.PIPELINE_OUTPUT, b"\xef\xbb\xbf<S>" + b"x" * 5000 + b"</S>", pid)
    small = _server_frame(wc.PIPELINE_STATE, b'<I32 N="PipelineState">4</I32>', None)
    frags = wc.fragment(7, big, 1000) + wc.fragment(8, small, 1000)
    assert all(len(f) <= 1000 for f in frags) and len(frags) == 7
    payloads = wc.pack_payloads(frags, 2500)
    assert all(len(p) <= 2500 for p in payloads) and len(payloads) > 1
    d = wc.Defragmenter(limit=100_000)
    msgs = [m for p in payloads for m in d.feed(p)]
    assert [m.msg_type for m in msgs] == [wc.PIPELINE_OUTPUT, wc.PIPELINE_STATE]
    assert msgs[0].pid == pid and msgs[1].pid is None
    assert msgs[0].data == b"<S>" + b"x" * 5000 + b"</S>"  # the BOM is dropped
    assert wc.output_text(msgs[0].data) == "x" * 5000
    assert wc.pipeline_state(msgs[1].data) == wc.PIPE_COMPLETED


def test_defragmenter_rejects_out_of_order_truncated_and_oversized() -> None:
    frags = wc.fragment(1, _server_frame(wc.PIPELINE_OUTPUT, b"<S>abc</S>" * 50, None), 100)
    with pytest.raises(WinRMError, match="out of order"):
        wc.Defragmenter(limit=10_000).feed(frags[1])
    with pytest.raises(WinRMError, match="truncated"):
        wc.Defragmenter(limit=10_000).feed(frags[0][:-3])
    with pytest.raises(OutputTooLarge):
        wc.Defragmenter(limit=200).feed(b"".join(frags))


def test_max_fragment_payload_fits_envelope_after_base64() -> None:
    for env in (wc.DEFAULT_MAX_ENVELOPE, wc.MODERN_MAX_ENVELOPE):
        raw = wc.max_fragment_payload(env)
        assert len(base64.b64encode(b"\0" * raw)) + 2048 <= env


def test_clixml_strings_and_error_records() -> None:
    assert wc.clixml_string("a_x000D__x000A_b") == "a\r\nb"
    assert wc.clixml_string("_xD83D__xDE00_") == "\U0001f600"
    assert wc.output_text(b"<Nil />") == ""
    record = (
        b'<Obj RefId="0"><TN RefId="0"><T>System.Management.Automation.ErrorRecord</T></TN><ToString>x</ToString>'
        b'<MS><Obj N="Exception" RefId="1"><Props><S N="Message">The term _x0027_x_x0027_ is not recognized.</S>'
        b'</Props></Obj><S N="FullyQualifiedErrorId">CommandNotFoundException</S></MS></Obj>'
    )
    assert wc.error_record_from(record) == "The term 'x' is not recognized. (CommandNotFoundException)"
    with_details = record.replace(b"<MS>", b'<MS><S N="ErrorDetails_Message">friendly</S>')
    assert wc.error_record_from(with_details) == "friendly (CommandNotFoundException)"
    state = (
        b'<Obj RefId="0"><MS><I32 N="PipelineState">5</I32><Obj N="ExceptionAsErrorRecord" RefId="1">'
        + record[len(b'<Obj RefId="0">') : -len(b"</Obj>")]
        + b"</Obj></MS></Obj>"
    )
    assert wc.pipeline_state(state) == wc.PIPE_FAILED
    assert wc.pipeline_state_error(state) == "The term 'x' is not recognized. (CommandNotFoundException)"


def test_capability_and_pool_state() -> None:
    cap = b'<Obj RefId="0"><MS><Version N="protocolversion">2.1</Version></MS></Obj>'
    assert wc.protocol_version(cap) == (2, 1)
    assert wc.pool_state(b'<I32 N="RunspaceState">2</I32>') == wc.POOL_OPENED
    with pytest.raises(WinRMError):
        wc.pool_state(b"<Obj/>")


def test_encryption_roundtrip_with_real_ntlm_contexts() -> None:
    """Wrap with a client context, unwrap with the server's (and the other way round)."""
    import os
    import tempfile

    import spnego

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(":user:Secret-1\n")
    old = os.environ.get("NTLM_USER_FILE")
    os.environ["NTLM_USER_FILE"] = f.name
    try:
        client = spnego.client("user", "Secret-1", protocol="ntlm", options=spnego.NegotiateOptions.wrapping_winrm)
        server = spnego.server(protocol="ntlm", options=spnego.NegotiateOptions.wrapping_winrm)
        tok = client.step()
        while tok is not None:
            tok = server.step(tok)
            tok = client.step(tok) if tok is not None else None
    finally:
        if old is None:
            os.environ.pop("NTLM_USER_FILE")
        else:
            os.environ["NTLM_USER_FILE"] = old
        os.unlink(f.name)
    msg = b"<s:Envelope>" + b"y" * 3000 + b"</s:Envelope>"
    body = wc.wrap(msg, client.wrap_winrm)
    assert body.endswith(b"--Encrypted Boundary--\r\n") and b"Length=%d\r\n" % len(msg) in body
    assert msg not in body
    assert wc.unwrap(body, wc.ENC_CONTENT_TYPE, server.unwrap_winrm) == msg
    back = wc.wrap(b"reply", server.wrap_winrm)
    assert wc.unwrap(back, wc.ENC_CONTENT_TYPE, client.unwrap_winrm) == b"reply"
    lying = wc.wrap(b"reply", server.wrap_winrm).replace(b"Length=5", b"Length=6")
    with pytest.raises(WinRMError, match="does not match"):
        wc.unwrap(lying, wc.ENC_CONTENT_TYPE, client.unwrap_winrm)
