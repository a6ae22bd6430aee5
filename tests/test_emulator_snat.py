"""CreateSnatEntry / DeleteSnatEntry through the real aliyun SDK against the default world."""

from __future__ import annotations

from aliyunsdkvpc.request.v20160428.CreateSnatEntryRequest import CreateSnatEntryRequest
from aliyunsdkvpc.request.v20160428.DeleteSnatEntryRequest import DeleteSnatEntryRequest
from aliyunsdkvpc.request.v20160428.DescribeSnatTableEntriesRequest import DescribeSnatTableEntriesRequest

from tests.fixtures.emulator import SdkCaller

TABLE = "stb-emudefault"
POD_VSW = "vsw-emupodi"


def create(table: str = TABLE, vswitch: str | None = POD_VSW, cidr: str | None = None,
           snat_ip: str = "203.0.113.10", token: str | None = None) -> CreateSnatEntryRequest:
    request = CreateSnatEntryRequest()
    request.set_SnatTableId(table)
    request.set_SnatIp(snat_ip)
    if vswitch is not None:
        request.set_SourceVSwitchId(vswitch)
    if cidr is not None:
        request.set_SourceCIDR(cidr)
    if token is not None:
        request.set_ClientToken(token)
    return request


def delete(entry: str, table: str = TABLE) -> DeleteSnatEntryRequest:
    request = DeleteSnatEntryRequest()
    request.set_SnatTableId(table)
    request.set_SnatEntryId(entry)
    return request


def entries(sdk: SdkCaller) -> dict[str, tuple[str, str]]:
    request = DescribeSnatTableEntriesRequest()
    request.set_SnatTableId(TABLE)
    rows = sdk.call(request)["SnatTableEntries"]["SnatTableEntry"]
    return {r["SnatEntryId"]: (r["SourceVSwitchId"], r["SourceCIDR"]) for r in rows}


def test_create_then_delete_an_entry_for_the_pod_vswitch(sdk: SdkCaller) -> None:
    entry = sdk.call(create())["SnatEntryId"]
    assert entry.startswith("snat-")
    assert entries(sdk)[entry] == (POD_VSW, "192.168.32.0/19")
    assert sdk.call(delete(entry)).keys() == {"RequestId"}
    assert entry not in entries(sdk)
    assert set(entries(sdk)) == {"snat-emunodei", "snat-emunodej"}


def test_create_by_cidr_and_client_token_is_idempotent(sdk: SdkCaller) -> None:
    first = sdk.call(create(vswitch=None, cidr="10.9.0.0/24", token="tok-1"))["SnatEntryId"]
    again = sdk.call(create(vswitch=None, cidr="10.9.0.0/24", token="tok-1"))["SnatEntryId"]
    assert first == again
    assert entries(sdk)[first] == ("", "10.9.0.0/24")


def test_create_errors(sdk: SdkCaller) -> None:
    assert sdk.error(create(table="stb-nope")).error_code == "InvalidSnatTableId.NotFound"
    assert sdk.error(create(vswitch="vsw-nope")).error_code == "InvalidVSwitchId.NotFound"
    both = sdk.error(create(cidr="10.0.0.0/8"))
    assert both.error_code == "InvalidParameter" and both.http_status == 400
    assert sdk.error(create(vswitch=None)).error_code == "InvalidParameter"
    assert sdk.error(create(vswitch=None, cidr="not-a-cidr")).error_code == "InvalidParameter"
    assert sdk.error(create(snat_ip="198.51.100.7")).error_code == "InvalidIp.NotInNatgw"
    duplicated = sdk.error(create(vswitch="vsw-emunodei"))
    assert duplicated.error_code == "Forbidden.SourceDuplicated" and duplicated.http_status == 403


def test_delete_errors(sdk: SdkCaller) -> None:
    missing = sdk.error(delete("snat-nope"))
    assert missing.error_code == "InvalidSnatEntryId.NotFound" and missing.http_status == 404
    assert sdk.error(delete("snat-emunodei", table="stb-nope")).error_code == "InvalidSnatTableId.NotFound"
    sdk.call(delete("snat-emunodei"))
    assert sdk.error(delete("snat-emunodei")).error_code == "InvalidSnatEntryId.NotFound"
