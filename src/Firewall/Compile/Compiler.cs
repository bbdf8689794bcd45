using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Compile;

/// <summary>The result of compiling: the owner's kernel objects, and why it fell back to
/// drop-all when it had to.</summary>
public sealed record CompileResult(Fragment Fragment, string? Error);

/// <summary>Policy + container facts -> set elements and per-rule chains (docs/nftables.md).
/// Pure and total: it never throws, and anything it cannot express compiles to drop-all.</summary>
public static class Compiler
{
    /// <summary>Most elements one container may own; beyond this the policy is refused.</summary>
    public const int MaxElements = 4096;

    private static readonly Field AnyProto = new(FieldKind.Proto, 0, 255);
    private static readonly Field AnyPort = new(FieldKind.Port, 0, ushort.MaxValue);

    /// <summary>A box of allowed traffic for one set, with the per-rule chain it goes
    /// through (null: plain accept).</summary>
    private sealed record Grant(string Set, string VerdictSet, ImmutableArray<Field> Box, RuleChain? Chain, DateTimeOffset? Expires = null);

    public static CompileResult Compile(ContainerFacts self, PolicyDecision decision, IReadOnlyCollection<ContainerFacts> peers,
        IReadOnlyDictionary<string, HostAddresses>? hosts = null)
    {
        if (!decision.IsManaged || !self.Running) return new(Fragment.Empty(self.Id), null);
        // attachments the host's hooks never see (host/container: network mode, macvlan, ipvlan,
        // overlay) contribute no address to any set, the container's own or its peers'
        self = Visibility.Filterable(self);
        if (peers.Any(p => !Visibility.AllFilterable(p))) peers = [.. peers.Select(Visibility.Filterable)];

        var managed = self.Addresses.Distinct().SelectMany(Managed).ToList();
        var grants = new List<Grant>();
        var extra = new List<Element>();
        var chains = new List<RuleChain>();
        var policy = decision.EffectivePolicy;
        foreach (var rule in policy.Output)
        {
            if (rule.HostsOrEmpty.IsEmpty) AddOutput(self, rule, peers, grants, chains, extra);
            else AddHosts(self, rule, hosts, grants);
        }
        AddMappedPorts(self, policy.MappedPorts, grants, chains, extra);
        AddNeighbours(self, policy.NeighbourNetworksOrEmpty, grants);

        if (grants.Count > MaxElements)
            return new(new Fragment(self.Id, [.. managed], []),
                $"policy expands to {grants.Count} set elements, more than the limit of {MaxElements}; dropping all traffic");

        var elements = new List<Element>(managed);
        elements.AddRange(extra);
        foreach (var group in grants.Where(g => g.Chain is null && g.Expires is null).GroupBy(g => g.Set))
            elements.AddRange(BoxSet.Disjoint(group.Select(g => g.Box)).Select(box => new Element(group.Key, box)));
        // addresses from DNS: where two overlap, the one that lives longer wins the overlap
        foreach (var group in grants.Where(g => g.Expires is not null).GroupBy(g => g.Set))
            elements.AddRange(BoxSet.Disjoint(group.OrderByDescending(g => g.Expires).Select(g => (g.Box, g.Expires!.Value)))
                .Select(piece => new Element(group.Key, piece.Box, expires: piece.Tag)));
        foreach (var group in grants.Where(g => g.Chain is not null).GroupBy(g => g.VerdictSet))
            elements.AddRange(BoxSet.Disjoint(group.Select(g => (g.Box, g.Chain!.Name)))
                .Select(piece => new Element(group.Key, piece.Box, piece.Tag)));

        return new(new Fragment(self.Id, [.. elements.Distinct().Order()], [.. chains.Distinct().Order()]), null);
    }

    /// <summary>The owner of the gateway networks' subnets (deny-by-default mode).</summary>
    public const string GatewayOwner = "gateway-networks";

    /// <summary>Deny-by-default mode: the subnets of the gateway networks, from which only
    /// addresses of containers WhaleWall manages may send.</summary>
    public static Fragment Gateways(IEnumerable<DockerNetwork> networks, GatewayConfig gateway) =>
        new(GatewayOwner, [.. networks
            .Where(n => gateway.IsGateway(n.AsAttachment()))
            .SelectMany(n => n.Subnets)
            .Distinct()
            .GroupBy(r => r.Family)
            .SelectMany(g => BoxSet.Disjoint(g.Select(r => ImmutableArray.Create(Field.Address(r))))
                .Select(box => new Element(NftSets.Gateway(g.Key), box)))
            .Order()], []);

    /// <summary>An address under policy, with its drop counters (egress and ingress).</summary>
    private static IEnumerable<Element> Managed(IPAddress address)
    {
        var range = AddressRange.Single(address);
        yield return new Element(NftSets.Managed(range.Family), [Field.Address(range)]);
        yield return new Element(NftSets.DropOut(range.Family), [Field.Address(range)]);
        yield return new Element(NftSets.DropIn(range.Family), [Field.Address(range)]);
    }

    private static void AddOutput(ContainerFacts self, OutputRule rule, IReadOnlyCollection<ContainerFacts> peers,
        List<Grant> grants, List<RuleChain> chains, List<Element> extra)
    {
        var sources = AddressesOn(self, rule.Network).Select(AddressRange.Single).ToList();
        var chain = ChainFor(rule.Action, outbound: true, chains, extra);
        var protoField = rule.Proto is { } p ? new Field(FieldKind.Proto, (byte)p, (byte)p) : AnyProto;
        List<Field> sportFields, dportFields;
        if (rule.Proto is L4Proto.Icmp or L4Proto.Icmpv6)
        {
            // th sport of an ICMP packet is its type and code: type * 256 + code
            sportFields = rule.IcmpTypesOrEmpty.IsEmpty
                ? [AnyPort]
                : [.. rule.IcmpTypesOrEmpty.Select(t => new Field(FieldKind.Port, (UInt128)t * 256, (UInt128)t * 256 + 255))];
            dportFields = [AnyPort];
        }
        else
        {
            sportFields = Ports(rule.SrcPorts);
            dportFields = Ports(rule.DstPorts);
        }

        List<AddressRange> destinations;
        if (rule.ToResolvers)
            destinations = [.. self.DnsServersOrEmpty.Select(AddressRange.Single)];
        else if (!rule.HostsOrEmpty.IsEmpty)
            destinations = []; // host names: resolved by the hostname feature, nothing until then
        else if (rule.Container is { } reference)
            destinations = peers.Where(c => c.Running && c.IsNamed(reference, self.ComposeProject))
                .SelectMany(c => AddressesOn(c, rule.Network)).Distinct().Select(AddressRange.Single).ToList();
        else if (!rule.Ips.IsEmpty)
            destinations = [.. rule.Ips];
        else
            destinations = [AddressRange.Any(IpFamily.V4), AddressRange.Any(IpFamily.V6)];

        foreach (var src in sources)
        {
            if (rule.Proto == L4Proto.Icmp && src.Family != IpFamily.V4) continue;
            if (rule.Proto == L4Proto.Icmpv6 && src.Family != IpFamily.V6) continue;
            foreach (var dst in destinations.Where(d => d.Family == src.Family))
            foreach (var sport in sportFields)
            foreach (var dport in dportFields)
            {
                ImmutableArray<Field> box = [Field.Address(src), Field.Address(dst), protoField, sport, dport];
                grants.Add(new Grant(NftSets.Out(src.Family), NftSets.OutVerdict(src.Family), box, chain));
                if (rule.Container is not null)
                    grants.Add(new Grant(NftSets.Peer(src.Family), NftSets.Peer(src.Family), box, null));
            }
        }
    }

    private static void AddMappedPorts(ContainerFacts self, MappedPortsPolicy mapped, List<Grant> grants,
        List<RuleChain> chains, List<Element> extra)
    {
        var published = self.Ports.Select(p => (p.ContainerPort, p.Proto)).Distinct().ToList();
        if (published.Count == 0) return;
        var own = self.Addresses.Distinct().Select(AddressRange.Single).ToList();
        var clients = mapped.External.Ips.IsEmpty
            ? [AddressRange.Any(IpFamily.V4), AddressRange.Any(IpFamily.V6)]
            : mapped.External.Ips;
        var localChain = mapped.Localhost.Allow ? ChainFor(mapped.Localhost.Action, outbound: false, chains, extra) : null;
        var externalChain = mapped.External.Allow ? ChainFor(mapped.External.Action, outbound: false, chains, extra) : null;

        foreach (var (port, proto) in published)
        {
            var protoField = new Field(FieldKind.Proto, (byte)proto, (byte)proto);
            var portField = new Field(FieldKind.Port, port, port);
            foreach (var addr in own)
            {
                if (mapped.Localhost.Allow)
                    grants.Add(new Grant(NftSets.Local(addr.Family), NftSets.LocalVerdict(addr.Family),
                        [Field.Address(addr), protoField, portField], localChain));
                if (!mapped.External.Allow) continue;
                foreach (var client in clients.Where(c => c.Family == addr.Family))
                    grants.Add(new Grant(NftSets.Pub(addr.Family), NftSets.PubVerdict(addr.Family),
                        [Field.Address(client), Field.Address(addr), protoField, portField], externalChain));
            }
        }
    }

    /// <summary>`hosts:` rules: the names' current addresses, each element expiring with its
    /// DNS answer (TTL + grace) unless refreshed.</summary>
    private static void AddHosts(ContainerFacts self, OutputRule rule, IReadOnlyDictionary<string, HostAddresses>? hosts, List<Grant> grants)
    {
        if (hosts is null) return;
        var protoField = rule.Proto is { } p ? new Field(FieldKind.Proto, (byte)p, (byte)p) : AnyProto;
        var sports = rule.Proto is L4Proto.Icmp or L4Proto.Icmpv6 ? [AnyPort] : Ports(rule.SrcPorts);
        var dports = rule.Proto is L4Proto.Icmp or L4Proto.Icmpv6 ? [AnyPort] : Ports(rule.DstPorts);
        foreach (var name in rule.HostsOrEmpty)
        {
            if (!hosts.TryGetValue(name, out var resolved)) continue;
            foreach (var src in AddressesOn(self, rule.Network).Select(AddressRange.Single))
            foreach (var (address, expires) in resolved.Addresses)
            {
                var dst = AddressRange.Single(address);
                if (dst.Family != src.Family) continue;
                foreach (var sport in sports)
                foreach (var dport in dports)
                    grants.Add(new Grant(NftSets.OutHosts(src.Family), NftSets.OutHosts(src.Family),
                        [Field.Address(src), Field.Address(dst), protoField, sport, dport], null, expires));
            }
        }
    }

    /// <summary>Deny-by-default mode: containers on the same gateway network talk freely.</summary>
    private static void AddNeighbours(ContainerFacts self, ImmutableArray<string> networks, List<Grant> grants)
    {
        foreach (var network in self.Networks.Where(n => networks.Contains(n.Name)))
        {
            foreach (var (address, prefix) in new[] { (network.IPv4, network.IPv4Prefix), (network.IPv6, network.IPv6Prefix) })
            {
                if (address is null) continue;
                var own = AddressRange.Single(address);
                var subnet = Subnet(own, prefix);
                grants.Add(new Grant(NftSets.Out(own.Family), NftSets.OutVerdict(own.Family),
                    [Field.Address(own), Field.Address(subnet), AnyProto, AnyPort, AnyPort], null));
                grants.Add(new Grant(NftSets.In(own.Family), NftSets.In(own.Family),
                    [Field.Address(subnet), Field.Address(own), AnyProto, AnyPort], null));
            }
        }
    }

    public static AddressRange Subnet(AddressRange address, int prefix)
    {
        var bits = Addresses.Bits(address.Family);
        prefix = Math.Clamp(prefix, 0, bits);
        var host = prefix == bits ? UInt128.Zero : (bits - prefix == 128 ? UInt128.MaxValue : (UInt128.One << (bits - prefix)) - 1);
        return new AddressRange(address.Family, address.Lo & ~host, (address.Lo & ~host) | host);
    }

    /// <summary>The per-rule chain for a rule's log prefix and verdict, if it has any; est
    /// queues add a chain of their own reached through the flow's ct mark.</summary>
    private static RuleChain? ChainFor(RuleAction? action, bool outbound, List<RuleChain> chains, List<Element> extra)
    {
        if (action is null) return null;
        var verdict = action.Verdict;
        uint? mark = null;
        if (verdict is { InputEstQueue: { } inbound, OutputEstQueue: { } outgoing })
        {
            var est = outbound ? RuleChain.ForEstablished(outgoing, inbound) : RuleChain.ForEstablished(inbound, outgoing);
            mark = RuleChain.MarkOf(est);
            chains.Add(est);
            extra.Add(new Element(NftSets.EstablishedQueues, [new Field(FieldKind.Mark, mark.Value, mark.Value)], est.Name));
        }
        var chain = RuleChain.ForRule(action.LogPrefix, mark, verdict?.Chain, verdict?.Queue);
        chains.Add(chain);
        return chain;
    }

    private static List<Field> Ports(ImmutableArray<PortRange> ports) =>
        ports.IsDefaultOrEmpty ? [AnyPort] : [.. ports.Select(r => new Field(FieldKind.Port, r.Lo, r.Hi))];

    private static IEnumerable<IPAddress> AddressesOn(ContainerFacts container, string? network) =>
        container.Networks
            .Where(n => network is null || n.Name == network)
            .SelectMany(n => new[] { n.IPv4, n.IPv6 })
            .OfType<IPAddress>();
}
