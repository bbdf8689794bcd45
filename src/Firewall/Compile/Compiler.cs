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
/// Pure and total: it never throws, and anything it cannot express compiles to drop-all.
/// <para>The work is bounded before it is done: each rule becomes a <see cref="Product"/> of
/// small lists (sources x destinations x proto x source ports x destination ports), their
/// sizes are multiplied and summed arithmetically, and only a policy within
/// <see cref="MaxElements"/> is expanded; splitting overlaps (<see cref="BoxSet"/>) runs
/// under a budget, and the final element count is held to the same limit.</para></summary>
public static class Compiler
{
    /// <summary>Most elements one container may own; beyond this the policy is refused.</summary>
    public const int MaxElements = PolicySize.MaxElements;

    /// <summary>Splitting overlaps: at most 250,000 pairs of boxes to compare (a legitimate
    /// 4,096-element policy of 16 addresses x 256 ports has 30,720), 1 million cuts and 2
    /// pieces made per allowed element. Each step costs from a few to a few hundred
    /// nanoseconds: the worst cases stay well under 100 ms (HostileCompileTests).</summary>
    public static readonly BoxSet.Budget SplitBudget = new(MaxPieces: 2 * MaxElements, MaxPairs: 250_000, MaxCuts: 1_000_000);

    private static readonly Field AnyProto = new(FieldKind.Proto, 0, 255);
    private static readonly Field AnyPort = new(FieldKind.Port, 0, ushort.MaxValue);

    /// <summary>Boxes of allowed traffic for one set, as the product of one list of intervals
    /// per field, with the per-rule chain they go through (null: plain accept). Its size is
    /// known without expanding it.</summary>
    private sealed record Product(string Set, string VerdictSet, ImmutableArray<IReadOnlyList<Field>> Fields, RuleChain? Chain,
        DateTimeOffset? Expires = null)
    {
        public long Count => Fields.Aggregate(1L, (n, list) => PolicySize.Times(n, list.Count));

        public IEnumerable<ImmutableArray<Field>> Boxes()
        {
            if (Fields.Any(f => f.Count == 0)) yield break;
            var index = new int[Fields.Length];
            while (true)
            {
                var box = ImmutableArray.CreateBuilder<Field>(Fields.Length);
                for (var d = 0; d < Fields.Length; d++) box.Add(Fields[d][index[d]]);
                yield return box.MoveToImmutable();
                var k = Fields.Length - 1;
                while (k >= 0 && ++index[k] == Fields[k].Count) index[k--] = 0;
                if (k < 0) yield break;
            }
        }
    }

    public static CompileResult Compile(ContainerFacts self, PolicyDecision decision, IReadOnlyCollection<ContainerFacts> peers,
        IReadOnlyDictionary<string, HostAddresses>? hosts = null, BindingSettings? binding = null, bool proxied = false, bool audit = false)
    {
        var inet = CompileInet(self, decision, peers, hosts, proxied && decision is PolicyDecision.Enforced, audit);
        // binding to the bridge ports is identity, not policy: it holds for invalid policies too
        var bridge = BindingElements.For(Visibility.Filterable(self), decision.IsManaged, binding ?? BindingSettings.Off);
        return bridge.IsEmpty ? inet : inet with { Fragment = inet.Fragment with { Bridge = bridge } };
    }

    private static CompileResult CompileInet(ContainerFacts self, PolicyDecision decision, IReadOnlyCollection<ContainerFacts> peers,
        IReadOnlyDictionary<string, HostAddresses>? hosts, bool proxied, bool audit)
    {
        if (!decision.IsManaged || !self.Running) return new(Fragment.Empty(self.Id), null);
        // attachments the host's hooks never see (host/container: network mode, macvlan, ipvlan,
        // overlay) contribute no address to any set, the container's own or its peers'
        self = Visibility.Filterable(self);
        if (peers.Any(p => !Visibility.AllFilterable(p))) peers = [.. peers.Select(Visibility.Filterable)];

        var addresses = self.Addresses.Distinct().ToList();
        var managed = addresses.SelectMany(a => Managed(a, audit)).ToList();
        CompileResult DropAll(string why) => new(new Fragment(self.Id, [.. managed], []), why + "; dropping all traffic");

        var policy = decision.EffectivePolicy;
        if (PolicySize.EstQueueProblem(policy) is { } queueProblem) return DropAll(queueProblem);

        var products = new List<Product>();
        var extra = new List<Element>();
        var chains = new List<RuleChain>();
        var hostElements = 0L;
        foreach (var rule in policy.Output)
        {
            // under the DNS proxy all port 53 is redirected before `forward`: `_dns_` elements would be dead
            if (proxied && rule.ToResolvers) continue;
            if (rule.HostsOrEmpty.IsEmpty) AddOutput(self, rule, peers, products, chains, extra);
            else
            {
                // one product per answer: counted first, so a hostile set of answers builds nothing
                hostElements = PolicySize.Plus(hostElements, HostsCount(self, rule, hosts));
                if (hostElements > MaxElements)
                    return DropAll($"its host names' addresses expand to at least {hostElements} set elements, more than the limit of {MaxElements}");
                AddHosts(self, rule, hosts, products);
            }
        }
        AddMappedPorts(self, policy.MappedPorts, products, chains, extra);
        AddNeighbours(self, policy.NeighbourNetworksOrEmpty, products);

        // counted, not built: a hostile policy costs the multiplications only
        var count = products.Aggregate(0L, (n, p) => PolicySize.Plus(n, p.Count));
        if (count > MaxElements)
            return DropAll($"policy expands to {count} set elements, more than the limit of {MaxElements}");

        var elements = new List<Element>(managed);
        if (proxied) elements.AddRange(addresses.Select(AddressRange.Single)
            .Select(a => new Element(NftSets.DnsProxy(a.Family), [Field.Address(a)])));
        elements.AddRange(extra);
        foreach (var group in products.Where(p => p.Chain is null && p.Expires is null).GroupBy(p => p.Set))
        {
            var split = BoxSet.Disjoint(group.SelectMany(p => p.Boxes()), SplitBudget);
            if (split.Error is { } e) return DropAll($"{group.Key}: {e}");
            if (split.Pieces.Any(piece => OwnerCount(group.Key, piece.Box) > MaxOwnersPerPiece))
                return DropAll($"{group.Key}: a rule's pieces span more than {MaxOwnersPerPiece} own addresses");
            elements.AddRange(split.Pieces.SelectMany(piece => OnePerOwner(group.Key, piece.Box)).Select(box => new Element(group.Key, box)));
        }
        // addresses from DNS: where two overlap, the one that lives longer wins the overlap
        foreach (var group in products.Where(p => p.Expires is not null).GroupBy(p => p.Set))
        {
            var split = BoxSet.Disjoint(group.OrderByDescending(p => p.Expires).SelectMany(p => p.Boxes().Select(b => (b, p.Expires!.Value))), SplitBudget);
            if (split.Error is { } e) return DropAll($"{group.Key}: {e}");
            elements.AddRange(split.Pieces.Select(piece => new Element(group.Key, piece.Box, expires: piece.Tag)));
        }
        foreach (var group in products.Where(p => p.Chain is not null).GroupBy(p => p.VerdictSet))
        {
            var split = BoxSet.Disjoint(group.SelectMany(p => p.Boxes().Select(b => (b, p.Chain!.Name))), SplitBudget);
            if (split.Error is { } e) return DropAll($"{group.Key}: {e}");
            elements.AddRange(split.Pieces.Select(piece => new Element(group.Key, piece.Box, piece.Tag)));
        }

        var distinct = elements.Distinct().Order().ToList();
        if (distinct.Count - managed.Count - (proxied ? addresses.Count : 0) > MaxElements)
            return DropAll($"policy needs {distinct.Count - managed.Count} set elements once overlapping ranges are split, more than the limit of {MaxElements}");
        return new(new Fragment(self.Id, [.. distinct], [.. chains.Distinct().Order()]), null);
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
            .SelectMany(g => BoxSet.Disjoint(g.Select(r => ImmutableArray.Create(Field.Address(r)))).Pieces
                .Select(piece => new Element(NftSets.Gateway(g.Key), piece.Box)))
            .Order()], []);

    /// <summary>An address under policy, with its drop counters (egress and ingress).</summary>
    private static IEnumerable<Element> Managed(IPAddress address, bool audit)
    {
        var range = AddressRange.Single(address);
        yield return new Element(NftSets.Managed(range.Family), [Field.Address(range)]);
        yield return new Element(NftSets.DropOut(range.Family), [Field.Address(range)]);
        yield return new Element(NftSets.DropIn(range.Family), [Field.Address(range)]);
        if (!audit) yield break;
        yield return new Element(NftSets.AuditOut(range.Family), [Field.Address(range)]);
        yield return new Element(NftSets.AuditIn(range.Family), [Field.Address(range)]);
    }

    private static void AddOutput(ContainerFacts self, OutputRule rule, IReadOnlyCollection<ContainerFacts> peers,
        List<Product> products, List<RuleChain> chains, List<Element> extra)
    {
        var sources = AddressesOn(self, rule.Network).Distinct().Select(AddressRange.Single).ToList();
        var chain = ChainFor(rule.Action, outbound: true, chains, extra);
        var protoField = rule.Proto is { } p ? new Field(FieldKind.Proto, (byte)p, (byte)p) : AnyProto;
        var (sportFields, dportFields) = PortFields(rule);

        List<AddressRange> destinations;
        if (rule.ToResolvers)
            destinations = [.. self.DnsServersOrEmpty.Distinct().Select(AddressRange.Single)];
        else if (!rule.HostsOrEmpty.IsEmpty)
            destinations = []; // host names: resolved by the hostname feature, nothing until then
        else if (rule.Container is { } reference)
            destinations = peers.Where(c => c.Running && c.IsNamed(reference, self.ComposeProject))
                .SelectMany(c => AddressesOn(c, rule.Network)).Distinct().Select(AddressRange.Single).ToList();
        else if (!rule.Ips.IsEmpty)
            destinations = [.. rule.Ips];
        else
            destinations = [AddressRange.Any(IpFamily.V4), AddressRange.Any(IpFamily.V6)];

        foreach (var family in new[] { IpFamily.V4, IpFamily.V6 })
        {
            if (rule.Proto == L4Proto.Icmp && family != IpFamily.V4) continue;
            if (rule.Proto == L4Proto.Icmpv6 && family != IpFamily.V6) continue;
            var src = sources.Where(a => a.Family == family).Select(Field.Address).ToList();
            var dst = destinations.Where(a => a.Family == family).Select(Field.Address).ToList();
            if (src.Count == 0 || dst.Count == 0) continue;
            ImmutableArray<IReadOnlyList<Field>> fields = [src, dst, [protoField], sportFields, dportFields];
            products.Add(new Product(NftSets.Out(family), NftSets.OutVerdict(family), fields, chain));
            if (rule.Container is not null)
                products.Add(new Product(NftSets.Peer(family), NftSets.Peer(family), fields, null));
        }
    }

    private static void AddMappedPorts(ContainerFacts self, MappedPortsPolicy mapped, List<Product> products,
        List<RuleChain> chains, List<Element> extra)
    {
        // published ports by protocol: a product of addresses x {proto} x ports per protocol
        var published = self.Ports.Select(p => (p.ContainerPort, p.Proto)).Distinct()
            .GroupBy(p => p.Proto)
            .Select(g => (Proto: new Field(FieldKind.Proto, (byte)g.Key, (byte)g.Key),
                Ports: (IReadOnlyList<Field>)g.Select(p => new Field(FieldKind.Port, p.ContainerPort, p.ContainerPort)).ToList()))
            .ToList();
        if (published.Count == 0) return;
        var clients = mapped.External.Ips.IsEmpty
            ? [AddressRange.Any(IpFamily.V4), AddressRange.Any(IpFamily.V6)]
            : mapped.External.Ips;
        var localChain = mapped.Localhost.Allow ? ChainFor(mapped.Localhost.Action, outbound: false, chains, extra) : null;
        var externalChain = mapped.External.Allow ? ChainFor(mapped.External.Action, outbound: false, chains, extra) : null;

        foreach (var family in new[] { IpFamily.V4, IpFamily.V6 })
        {
            var own = self.Addresses.Distinct().Select(AddressRange.Single).Where(a => a.Family == family).Select(Field.Address).ToList();
            if (own.Count == 0) continue;
            var from = clients.Where(c => c.Family == family).Select(Field.Address).ToList();
            foreach (var (proto, ports) in published)
            {
                if (mapped.Localhost.Allow)
                    products.Add(new Product(NftSets.Local(family), NftSets.LocalVerdict(family), [own, [proto], ports], localChain));
                if (mapped.External.Allow && from.Count > 0)
                    products.Add(new Product(NftSets.Pub(family), NftSets.PubVerdict(family), [from, own, [proto], ports], externalChain));
            }
        }
    }

    /// <summary>The elements <see cref="AddHosts"/> would add for <paramref name="rule"/>, counted
    /// without building them.</summary>
    private static long HostsCount(ContainerFacts self, OutputRule rule, IReadOnlyDictionary<string, HostAddresses>? hosts)
    {
        if (hosts is null) return 0;
        long ports = rule.Proto is L4Proto.Icmp or L4Proto.Icmpv6
            ? Math.Max(1, rule.IcmpTypesOrEmpty.Length)
            : PolicySize.Times(Math.Max(1, rule.SrcPorts.Length), Math.Max(1, rule.DstPorts.Length));
        var sources = AddressesOn(self, rule.Network).Distinct().Select(AddressRange.Single).ToList();
        long v4 = sources.Count(a => a.Family == IpFamily.V4);
        long v6 = sources.Count - v4;
        long total = 0;
        foreach (var name in rule.HostsOrEmpty)
        {
            if (!hosts.TryGetValue(name, out var resolved)) continue;
            foreach (var (address, _) in resolved.Addresses)
                total = PolicySize.Plus(total, PolicySize.Times(FamilyOf(address) == IpFamily.V4 ? v4 : v6, ports));
        }
        return total;
    }

    private static IpFamily FamilyOf(IPAddress address) =>
        address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork || address.IsIPv4MappedToIPv6 ? IpFamily.V4 : IpFamily.V6;

    /// <summary>`hosts:` rules: the names' current addresses, each element expiring with its
    /// DNS answer (TTL + grace) unless refreshed.</summary>
    private static void AddHosts(ContainerFacts self, OutputRule rule, IReadOnlyDictionary<string, HostAddresses>? hosts, List<Product> products)
    {
        if (hosts is null) return;
        var protoField = rule.Proto is { } p ? new Field(FieldKind.Proto, (byte)p, (byte)p) : AnyProto;
        var (sports, dports) = PortFields(rule);
        var sources = AddressesOn(self, rule.Network).Distinct().Select(AddressRange.Single).ToList();
        foreach (var name in rule.HostsOrEmpty)
        {
            if (!hosts.TryGetValue(name, out var resolved)) continue;
            foreach (var (address, expires) in resolved.Addresses)
            {
                var dst = AddressRange.Single(address);
                var src = sources.Where(s => s.Family == dst.Family).Select(Field.Address).ToList();
                if (src.Count == 0) continue;
                products.Add(new Product(NftSets.OutHosts(dst.Family), NftSets.OutHosts(dst.Family),
                    [src, [Field.Address(dst)], [protoField], sports, dports], null, expires));
            }
        }
    }

    /// <summary>Deny-by-default mode: containers on the same gateway network talk freely.</summary>
    private static void AddNeighbours(ContainerFacts self, ImmutableArray<string> networks, List<Product> products)
    {
        foreach (var network in self.Networks.Where(n => networks.Contains(n.Name)))
        {
            foreach (var (address, prefix) in new[] { (network.IPv4, network.IPv4Prefix), (network.IPv6, network.IPv6Prefix) })
            {
                if (address is null) continue;
                var own = AddressRange.Single(address);
                var subnet = Subnet(own, prefix);
                products.Add(new Product(NftSets.Out(own.Family), NftSets.OutVerdict(own.Family),
                    [[Field.Address(own)], [Field.Address(subnet)], [AnyProto], [AnyPort], [AnyPort]], null));
                products.Add(new Product(NftSets.In(own.Family), NftSets.In(own.Family),
                    [[Field.Address(subnet)], [Field.Address(own)], [AnyProto], [AnyPort]], null));
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

    /// <summary>A rule's source and destination port fields; for ICMP, its types (th sport of an
    /// ICMP packet is its type and code: type * 256 + code) and any.</summary>
    private static (List<Field> Source, List<Field> Destination) PortFields(OutputRule rule) =>
        rule.Proto is L4Proto.Icmp or L4Proto.Icmpv6
            ? (rule.IcmpTypesOrEmpty.IsEmpty
                ? [AnyPort]
                : [.. rule.IcmpTypesOrEmpty.Select(t => new Field(FieldKind.Port, (UInt128)t * 256, (UInt128)t * 256 + 255))], [AnyPort])
            : (Ports(rule.SrcPorts), Ports(rule.DstPorts));

    private static List<Field> Ports(ImmutableArray<PortRange> ports) =>
        ports.IsDefaultOrEmpty ? [AnyPort] : [.. ports.Select(r => new Field(FieldKind.Port, r.Lo, r.Hi))];

    private static IEnumerable<IPAddress> AddressesOn(ContainerFacts container, string? network) =>
        container.Networks
            .Where(n => network is null || n.Name == network)
            .SelectMany(n => new[] { n.IPv4, n.IPv6 })
            .OfType<IPAddress>();

    /// <summary>More own addresses than a container has networks cannot be in one piece; a bound
    /// all the same, since <see cref="OnePerOwner"/> enumerates them.</summary>
    private const int MaxOwnersPerPiece = 1024;

    private static UInt128 OwnerCount(string set, ImmutableArray<Field> box) =>
        NftPlacement.OwnerField(set) is { } i ? box[i].Hi - box[i].Lo + 1 : 1;

    /// <summary>An element of a sharded set holds one owner address (<see cref="NftPlacement"/>):
    /// a piece that merging joined across touching own addresses (two networks, a pinned address
    /// at the end of one subnet and the next one's first) is cut back into one per address.</summary>
    private static IEnumerable<ImmutableArray<Field>> OnePerOwner(string set, ImmutableArray<Field> box)
    {
        if (NftPlacement.OwnerField(set) is not { } i || box[i].Lo == box[i].Hi)
        {
            yield return box;
            yield break;
        }
        for (var a = box[i].Lo; ; a++)
        {
            yield return box.SetItem(i, box[i] with { Lo = a, Hi = a });
            if (a == box[i].Hi) break;
        }
    }
}
