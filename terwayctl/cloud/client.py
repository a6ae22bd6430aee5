"""`CloudClient`: typed ECS and VPC calls over the aliyun SDK, with paging, retries and rate limits.

Every call goes through `_call`: take a token from the action's bucket, build the SDK's typed
request with the parameters (and the endpoint override), send it, and turn errors into the typed
exceptions of terwayctl.cloud.errors. Retryable errors (Throttling, ServiceUnavailable,
InternalError, Operation.Conflict, connection failures) are retried with backoff and jitter;
create/assign calls carry one ClientToken that every retry reuses, so a retry never creates twice.
Attach/Detach/Delete and Unassign have no ClientToken: they are retried only after an error that
proves the cloud refused them (Throttling, Operation.Conflict), never after InternalError or a
timeout; the caller reads the cloud before calling again (docs/node.md, the intent log).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from terwayctl.cloud.errors import (
    CloudError,
    CloudInvalidParameter,
    connection_error,
    scrub,
    translate_server_error,
)
from terwayctl.cloud.models import (
    Eip,
    Instance,
    InstanceTypeInfo,
    Json,
    NatGateway,
    NetworkInterface,
    RouteEntry,
    RouteTable,
    SnatEntry,
    Vpc,
    VSwitch,
    eip_from_api,
    instance_from_api,
    instance_type_from_api,
    items,
    nat_gateway_from_api,
    network_interface_from_api,
    route_entry_from_api,
    route_table_from_api,
    snat_entry_from_api,
    vpc_from_api,
    vswitch_from_api,
)
from terwayctl.cloud.ratelimit import RateLimiter, RateLimits
from terwayctl.cloud.retry import RetryPolicy, call_with_retries, rejected

if TYPE_CHECKING:
    from terwayctl.cloud.sdk import SdkSession

log = logging.getLogger("terwayctl.cloud")

MAX_IPS_PER_CALL = 10
"""AssignPrivateIpAddresses / UnassignPrivateIpAddresses take at most 10 addresses per call."""
MAX_FILTER_VALUES = 10
"""DescribeInstanceTypes takes at most 10 InstanceTypes.N per call."""

# Page sizes: the largest each API documents (NextToken/MaxResults APIs, then PageNumber/PageSize ones).
DEFAULT_PAGE_SIZES: Mapping[str, int] = {
    "DescribeInstanceTypes": 1600,
    "DescribeInstances": 100,
    "DescribeNetworkInterfaces": 100,
    "DescribeVpcs": 50,
    "DescribeVSwitches": 50,
    "DescribeNatGateways": 50,
    "DescribeSnatTableEntries": 50,
    "DescribeEipAddresses": 100,
    "DescribeRouteTableList": 50,
    "DescribeRouteEntryList": 100,
}
MAX_PAGES = 10_000


RequestObserver = Callable[[str, float, "str | None"], None]
"""Called after each API request with the action, its duration and its error code (None: success)."""


@dataclass(frozen=True)
class Endpoint:
    """One endpoint for both ECS and VPC: `host[:port]` and the scheme (http|https)."""

    host: str
    protocol: str = "https"

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.host}"


@dataclass(frozen=True)
class ClientSettings:
    """Timeouts, retries and rate limits of a client (defaults suit the real cloud)."""

    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    pool_size: int = 10
    page_sizes: Mapping[str, int] = field(default_factory=dict)
    """Overrides of DEFAULT_PAGE_SIZES per action."""

    def page_size(self, action: str) -> int:
        return self.page_sizes.get(action) or DEFAULT_PAGE_SIZES.get(action, 50)


class CloudClient:
    """ECS and VPC for one region; satisfies terwayctl.cloud.api.CloudApi. Close it when done."""

    def __init__(
        self,
        session: SdkSession,
        *,
        region: str,
        endpoint: Endpoint | None = None,
        settings: ClientSettings | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        token_factory: Callable[[], str] = lambda: str(uuid.uuid4()),
        credentials_source: str = "",
    ) -> None:
        self._session = session
        self._region = region
        self._endpoint = endpoint
        self._settings = settings or ClientSettings()
        self._sleep = sleep
        self._clock = clock
        self._new_token = token_factory
        self._limiter = RateLimiter(self._settings.rate_limits, clock=clock, sleep=sleep)
        self._observers: list[RequestObserver] = []
        self.credentials_source = credentials_source

    @property
    def region(self) -> str:
        return self._region

    @property
    def endpoint(self) -> Endpoint | None:
        return self._endpoint

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> CloudClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self._endpoint.url if self._endpoint else "default endpoints"
        return f"CloudClient(region={self._region!r}, {where}, {self.credentials_source})"

    # ----------------------------------------------------------------------------------- ECS

    def describe_instance_types(self, instance_types: Sequence[str] = ()) -> list[InstanceTypeInfo]:
        """All instance types (every page), or only the named ones (InstanceTypes.N: 10 per call)."""
        batches = [instance_types[i : i + MAX_FILTER_VALUES] for i in range(0, len(instance_types), MAX_FILTER_VALUES)]
        found: list[InstanceTypeInfo] = []
        for batch in batches or [()]:
            pages = self._pages_by_token("ecs", "DescribeInstanceTypes", _indexed("InstanceTypes", batch))
            found += [instance_type_from_api(o) for page in pages for o in items(page, "InstanceTypes", "InstanceType")]
        return found

    def describe_instances(
        self, *, instance_ids: Sequence[str] = (), vpc_id: str | None = None, zone_id: str | None = None
    ) -> list[Instance]:
        params: dict[str, object] = {"VpcId": vpc_id, "ZoneId": zone_id}
        if instance_ids:
            params["InstanceIds"] = _json_list(instance_ids)
        pages = self._pages_by_token("ecs", "DescribeInstances", params)
        return [instance_from_api(o) for page in pages for o in items(page, "Instances", "Instance")]

    def describe_network_interfaces(
        self,
        *,
        network_interface_ids: Sequence[str] = (),
        instance_id: str | None = None,
        vswitch_id: str | None = None,
        vpc_id: str | None = None,
        status: str | None = None,
    ) -> list[NetworkInterface]:
        params: dict[str, object] = {
            "InstanceId": instance_id,
            "VSwitchId": vswitch_id,
            "VpcId": vpc_id,
            "Status": status,
            **_indexed("NetworkInterfaceId", network_interface_ids),
        }
        pages = self._pages_by_token("ecs", "DescribeNetworkInterfaces", params)
        return [
            network_interface_from_api(o)
            for page in pages
            for o in items(page, "NetworkInterfaceSets", "NetworkInterfaceSet")
        ]

    def create_network_interface(
        self,
        *,
        vswitch_id: str,
        security_group_ids: Sequence[str],
        secondary_ip_count: int = 0,
        name: str | None = None,
        description: str | None = None,
        tags: Mapping[str, str] | None = None,
        client_token: str | None = None,
        ipv6_count: int = 0,
    ) -> NetworkInterface:
        """Create an ENI (Available, not attached). One ClientToken for all retries of this call.
        `ipv6_count`: IPv6 addresses created with it (Ipv6AddressCount; 0 sends nothing)."""
        if not security_group_ids:
            raise CloudInvalidParameter(
                "CreateNetworkInterface needs at least one security group", code="MissingSecurityGroupId"
            )
        params: dict[str, object] = {
            "VSwitchId": vswitch_id,
            "NetworkInterfaceName": name,
            "Description": description,
            **_indexed("SecurityGroupIds", security_group_ids),
        }
        if secondary_ip_count:
            params["SecondaryPrivateIpAddressCount"] = secondary_ip_count
        if ipv6_count:
            params["Ipv6AddressCount"] = ipv6_count
        for i, (key, value) in enumerate((tags or {}).items(), start=1):
            params[f"Tag.{i}.Key"] = key
            params[f"Tag.{i}.Value"] = value
        reply = self._call("ecs", "CreateNetworkInterface", params, client_token=client_token or self._new_token())
        return network_interface_from_api(reply)

    def attach_network_interface(self, network_interface_id: str, instance_id: str) -> None:
        """Start attaching (the ENI goes Attaching, then InUse)."""
        self._call("ecs", "AttachNetworkInterface", {"NetworkInterfaceId": network_interface_id, "InstanceId": instance_id},
                   unsafe_retry=False)

    def detach_network_interface(self, network_interface_id: str, instance_id: str) -> None:
        """Start detaching (the ENI goes Detaching, then Available)."""
        self._call("ecs", "DetachNetworkInterface", {"NetworkInterfaceId": network_interface_id, "InstanceId": instance_id},
                   unsafe_retry=False)

    def delete_network_interface(self, network_interface_id: str) -> None:
        self._call("ecs", "DeleteNetworkInterface", {"NetworkInterfaceId": network_interface_id}, unsafe_retry=False)

    def assign_private_ip_addresses(
        self,
        network_interface_id: str,
        *,
        count: int = 0,
        addresses: Sequence[str] = (),
        client_token: str | None = None,
    ) -> list[str]:
        """Assign `count` new secondary IPs, or the given `addresses`, in calls of at most 10.

        Each call has its own ClientToken, reused by that call's retries. Returns the assigned IPs.
        `client_token` (the caller's, e.g. from its intent log) is only allowed for a single call.
        """
        return self._assign(_IPV4, network_interface_id, count, addresses, client_token)

    def unassign_private_ip_addresses(self, network_interface_id: str, addresses: Sequence[str]) -> None:
        self._unassign(_IPV4, network_interface_id, addresses)

    def assign_ipv6_addresses(
        self,
        network_interface_id: str,
        *,
        count: int = 0,
        addresses: Sequence[str] = (),
        client_token: str | None = None,
    ) -> list[str]:
        """AssignIpv6Addresses: `count` new IPv6 addresses (Ipv6AddressCount) or the given ones
        (Ipv6Address.N), with the same batching and ClientToken rules as the IPv4 call."""
        return self._assign(_IPV6, network_interface_id, count, addresses, client_token)

    def unassign_ipv6_addresses(self, network_interface_id: str, addresses: Sequence[str]) -> None:
        """UnassignIpv6Addresses (Ipv6Address.N), 10 per call; retried only when the cloud refused."""
        self._unassign(_IPV6, network_interface_id, addresses)

    def _assign(self, family: _AddressCalls, network_interface_id: str, count: int, addresses: Sequence[str],
                client_token: str | None) -> list[str]:
        if client_token is not None and (count > MAX_IPS_PER_CALL or len(addresses) > MAX_IPS_PER_CALL):
            raise CloudInvalidParameter(
                f"one ClientToken covers one call of at most {MAX_IPS_PER_CALL} addresses", code="InvalidParameter"
            )
        if bool(count) == bool(addresses):
            raise CloudInvalidParameter(
                "give either a count or the addresses to assign, not both", code="InvalidParameter"
            )
        if count < 0:
            raise CloudInvalidParameter("the IP count cannot be negative", code="InvalidParameter")
        assigned: list[str] = []
        for batch in _batches(addresses, count):
            params: dict[str, object] = {"NetworkInterfaceId": network_interface_id}
            if isinstance(batch, int):
                params[family.count_param] = batch
            else:
                params.update(_indexed(family.address_param, batch))
            reply = self._call("ecs", family.assign, params, client_token=client_token or self._new_token())
            got = family.parse(reply)
            assigned += got if got else ([] if isinstance(batch, int) else list(batch))
        return assigned

    def _unassign(self, family: _AddressCalls, network_interface_id: str, addresses: Sequence[str]) -> None:
        for start in range(0, len(addresses), MAX_IPS_PER_CALL):
            batch = addresses[start : start + MAX_IPS_PER_CALL]
            params = {"NetworkInterfaceId": network_interface_id, **_indexed(family.address_param, batch)}
            self._call("ecs", family.unassign, params, unsafe_retry=False)

    # ----------------------------------------------------------------------------------- VPC

    def describe_vpcs(self, *, vpc_ids: Sequence[str] = ()) -> list[Vpc]:
        params: dict[str, object] = {"VpcId": ",".join(vpc_ids) if vpc_ids else None}
        pages = self._pages_by_number("vpc", "DescribeVpcs", params, "Vpcs", "Vpc")
        return [vpc_from_api(o) for page in pages for o in items(page, "Vpcs", "Vpc")]

    def describe_vswitches(
        self, *, vpc_id: str | None = None, vswitch_ids: Sequence[str] = (), zone_id: str | None = None
    ) -> list[VSwitch]:
        params: dict[str, object] = {
            "VpcId": vpc_id,
            "ZoneId": zone_id,
            "VSwitchId": ",".join(vswitch_ids) if vswitch_ids else None,
        }
        pages = self._pages_by_number("vpc", "DescribeVSwitches", params, "VSwitches", "VSwitch")
        return [vswitch_from_api(o) for page in pages for o in items(page, "VSwitches", "VSwitch")]

    def describe_nat_gateways(self, *, vpc_id: str | None = None, nat_gateway_id: str | None = None) -> list[NatGateway]:
        params: dict[str, object] = {"VpcId": vpc_id, "NatGatewayId": nat_gateway_id}
        pages = self._pages_by_number("vpc", "DescribeNatGateways", params, "NatGateways", "NatGateway")
        return [nat_gateway_from_api(o) for page in pages for o in items(page, "NatGateways", "NatGateway")]

    def describe_snat_table_entries(self, snat_table_id: str, *, source_vswitch_id: str | None = None) -> list[SnatEntry]:
        params: dict[str, object] = {"SnatTableId": snat_table_id, "SourceVSwitchId": source_vswitch_id}
        pages = self._pages_by_number("vpc", "DescribeSnatTableEntries", params, "SnatTableEntries", "SnatTableEntry")
        return [snat_entry_from_api(o) for page in pages for o in items(page, "SnatTableEntries", "SnatTableEntry")]

    def describe_eip_addresses(
        self, *, allocation_ids: Sequence[str] = (), associated_instance_id: str | None = None
    ) -> list[Eip]:
        params: dict[str, object] = {
            "AllocationId": ",".join(allocation_ids) or None,
            "AssociatedInstanceId": associated_instance_id,
        }
        pages = self._pages_by_number("vpc", "DescribeEipAddresses", params, "EipAddresses", "EipAddress")
        return [eip_from_api(o) for page in pages for o in items(page, "EipAddresses", "EipAddress")]

    def create_vswitch(
        self, *, vpc_id: str, zone_id: str, cidr_block: str, name: str | None = None,
        description: str | None = None, client_token: str | None = None,
    ) -> str:
        """Start creating a vSwitch (Pending, then Available); its id. One ClientToken for every retry."""
        params: dict[str, object] = {"VpcId": vpc_id, "ZoneId": zone_id, "CidrBlock": cidr_block,
                                     "VSwitchName": name, "Description": description}
        reply = self._call("vpc", "CreateVSwitch", params, client_token=client_token or self._new_token())
        return str(reply.get("VSwitchId") or "")

    def describe_route_table_list(
        self, *, vpc_id: str | None = None, route_table_id: str | None = None
    ) -> list[RouteTable]:
        params: dict[str, object] = {"VpcId": vpc_id, "RouteTableId": route_table_id}
        pages = self._pages_by_number("vpc", "DescribeRouteTableList", params, "RouterTableList", "RouterTableListType")
        return [route_table_from_api(o) for page in pages for o in items(page, "RouterTableList", "RouterTableListType")]

    def describe_route_entry_list(
        self, route_table_id: str, *, destination_cidr_block: str | None = None
    ) -> list[RouteEntry]:
        """Every route entry of a table (NextToken paging with MaxResult, singular, as this API names it)."""
        found: list[RouteEntry] = []
        token = ""
        for _ in range(MAX_PAGES):
            params: dict[str, object] = {"RouteTableId": route_table_id, "DestinationCidrBlock": destination_cidr_block,
                                         "MaxResult": self._settings.page_size("DescribeRouteEntryList"),
                                         "NextToken": token or None}
            page = self._call("vpc", "DescribeRouteEntryList", params)
            found += [route_entry_from_api(o) for o in items(page, "RouteEntrys", "RouteEntry")]
            token = str(page.get("NextToken") or "")
            if not token:
                return found
        raise CloudError(f"DescribeRouteEntryList: more than {MAX_PAGES} pages; stopped", code="SDK.TooManyPages",
                         action="DescribeRouteEntryList")

    def create_route_entry(
        self, route_table_id: str, *, destination_cidr_block: str, next_hop_type: str, next_hop_id: str,
        client_token: str | None = None,
    ) -> str:
        params: dict[str, object] = {"RouteTableId": route_table_id, "DestinationCidrBlock": destination_cidr_block,
                                     "NextHopType": next_hop_type, "NextHopId": next_hop_id}
        reply = self._call("vpc", "CreateRouteEntry", params, client_token=client_token or self._new_token())
        return str(reply.get("RouteEntryId") or "")

    def create_snat_entry(
        self, snat_table_id: str, *, snat_ip: str, source_vswitch_id: str | None = None,
        source_cidr: str | None = None, client_token: str | None = None,
    ) -> str:
        """Start creating a SNAT entry (Pending, then Available) for a vSwitch or a CIDR; its id."""
        if (source_vswitch_id is None) == (source_cidr is None):
            raise CloudInvalidParameter("give exactly one of source_vswitch_id and source_cidr",
                                        code="InvalidParameter")
        params: dict[str, object] = {"SnatTableId": snat_table_id, "SnatIp": snat_ip,
                                     "SourceVSwitchId": source_vswitch_id, "SourceCIDR": source_cidr}
        reply = self._call("vpc", "CreateSnatEntry", params, client_token=client_token or self._new_token())
        return str(reply.get("SnatEntryId") or "")

    # ------------------------------------------------------------------------------ plumbing

    def _pages_by_token(self, product: str, action: str, params: Mapping[str, object]) -> Iterator[Json]:
        """Every page of a NextToken/MaxResults API."""
        token = ""
        for _ in range(MAX_PAGES):
            page_params = {**params, "MaxResults": self._settings.page_size(action), "NextToken": token or None}
            page = self._call(product, action, page_params)
            yield page
            token = str(page.get("NextToken") or "")
            if not token:
                return
        raise CloudError(f"{action}: more than {MAX_PAGES} pages; stopped", code="SDK.TooManyPages", action=action)

    def _pages_by_number(
        self, product: str, action: str, params: Mapping[str, object], outer: str, inner: str
    ) -> Iterator[Json]:
        """Every page of a PageNumber/PageSize API (stops at TotalCount or a short page)."""
        seen = 0
        size = self._settings.page_size(action)
        for number in range(1, MAX_PAGES + 1):
            page = self._call(product, action, {**params, "PageNumber": number, "PageSize": size})
            yield page
            count = len(items(page, outer, inner))
            seen += count
            total = _to_int(page.get("TotalCount"))
            if count == 0 or (total is not None and seen >= total) or (total is None and count < size):
                return
        raise CloudError(f"{action}: more than {MAX_PAGES} pages; stopped", code="SDK.TooManyPages", action=action)

    def _call(
        self,
        product: str,
        action: str,
        params: Mapping[str, object],
        *,
        client_token: str | None = None,
        unsafe_retry: bool = True,
    ) -> dict[str, Any]:
        """One API call with rate limiting and retries; the reply's JSON object.

        `unsafe_retry=False` (mutating calls without a ClientToken): retried only when the cloud
        refused the call (Throttling, Operation.Conflict), never after InternalError or a timeout.
        """
        sent = {k: v for k, v in params.items() if v is not None}
        if client_token is not None:
            sent["ClientToken"] = client_token
        return call_with_retries(
            lambda: self._attempt(product, action, sent),
            self._settings.retry,
            action=action,
            sleep=self._sleep,
            clock=self._clock,
            retry_if=None if unsafe_retry else rejected,
        )

    def observe(self, observer: RequestObserver) -> None:
        """Call `observer(action, seconds, error_code or None)` after every API request, retries included."""
        self._observers.append(observer)

    def _attempt(self, product: str, action: str, params: Mapping[str, object]) -> dict[str, Any]:
        started = self._clock()
        try:
            reply = self._send(product, action, params)
        except CloudError as exc:
            self._notify(action, self._clock() - started, exc.code or "Unknown")
            raise
        self._notify(action, self._clock() - started, None)
        return reply

    def _notify(self, action: str, seconds: float, error: str | None) -> None:
        for observer in self._observers:
            observer(action, seconds, error)

    def _send(self, product: str, action: str, params: Mapping[str, object]) -> dict[str, Any]:
        from terwayctl.cloud import sdk

        self._limiter.acquire(action)
        request = sdk.new_request(product, action)
        for key, value in params.items():
            request.add_query_param(key, _wire(value))
        if self._endpoint is not None:
            request.set_endpoint(self._endpoint.host)
            request.set_protocol_type(self._endpoint.protocol)
        else:
            request.set_protocol_type("https")
        secrets = self._session.secrets
        try:
            reply = sdk.send(self._session.transport, request, secrets)
        except sdk.SdkServerError as exc:
            error = translate_server_error(
                action=action,
                code=exc.code,
                message=exc.message,
                request_id=exc.request_id,
                http_status=exc.http_status,
                params=params,
                secrets=secrets,
            )
            log.debug("%s failed: %s %s", action, exc.code, exc.request_id)
            raise error from None
        except sdk.SdkClientError as exc:
            where = self._endpoint.url if self._endpoint else f"{product} {self._region}"
            if exc.code == sdk.SDK_HTTP_ERROR:
                raise connection_error(action, exc.message, where, secrets) from None
            raise CloudError(
                f"{action} failed in the SDK: {exc.code}: {scrub(exc.message, secrets)}",
                "check --endpoint / TERWAYCTL_ENDPOINT and --region",
                code=exc.code,
                action=action,
            ) from None
        log.debug("%s ok: %s", action, reply.get("RequestId"))
        return reply


def _indexed(name: str, values: Sequence[str]) -> dict[str, object]:
    """RepeatList parameters: Name.1, Name.2, ..."""
    return {f"{name}.{i}": v for i, v in enumerate(values, start=1)}


def _json_list(values: Sequence[str]) -> str:
    import json

    return json.dumps(list(values))


def _wire(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _to_int(value: object) -> int | None:
    try:
        return int(str(value)) if value is not None else None
    except ValueError:
        return None


def _batches(addresses: Sequence[str], count: int) -> Iterator[int | Sequence[str]]:
    if addresses:
        for start in range(0, len(addresses), MAX_IPS_PER_CALL):
            yield addresses[start : start + MAX_IPS_PER_CALL]
        return
    while count > 0:
        yield min(count, MAX_IPS_PER_CALL)
        count -= MAX_IPS_PER_CALL


def _assigned_ipv6(reply: Json) -> list[str]:
    """AssignIpv6Addresses' `Ipv6Sets.Ipv6Address` (a list, or one string)."""
    sets = reply.get("Ipv6Sets")
    value = sets.get("Ipv6Address") if isinstance(sets, Mapping) else None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


def _assigned_ips(reply: Json) -> list[str]:
    assigned = reply.get("AssignedPrivateIpAddressesSet")
    if not isinstance(assigned, Mapping):
        return []
    ip_set = assigned.get("PrivateIpSet")
    value = ip_set.get("PrivateIpAddress") if isinstance(ip_set, Mapping) else ip_set
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return []


@dataclass(frozen=True)
class _AddressCalls:
    """One address family's assign/unassign actions and parameter names (ECS 2014-05-26)."""

    assign: str
    unassign: str
    count_param: str
    address_param: str
    parse: Callable[[Json], list[str]]


_IPV4 = _AddressCalls("AssignPrivateIpAddresses", "UnassignPrivateIpAddresses", "SecondaryPrivateIpAddressCount",
                      "PrivateIpAddress", _assigned_ips)
_IPV6 = _AddressCalls("AssignIpv6Addresses", "UnassignIpv6Addresses", "Ipv6AddressCount", "Ipv6Address",
                      _assigned_ipv6)
