using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Compile;

/// <summary>The result of compiling: the owner's elements, and why it fell back to
/// drop-all when it had to.</summary>
public sealed record CompileResult(Fragment Fragment, string? Error);

/// <summary>Policy + container facts -> set elements (docs/nftables.md). Pure and total: it
/// never throws, and anything it cannot express compiles to drop-all.</summary>
public static class Compiler
{
    /// <summary>Most elements one container may own; beyond this the policy is refused.</summary>
    public const int MaxElements = 4096;

    private static readonly Field AnyProto = new(FieldKind.Proto, 0, 255);
    private static readonly Field AnyPort = new(FieldKind.Port, 0, ushort.MaxValue);

    public static CompileResult Compile(ContainerFacts self, PolicyDecision decision, IReadOnlyCollection<ContainerFacts> peers)
    {
        if (!decision.IsManaged || !self.Running) return new(Fragment.Empty(self.Id), null);

        var managed = self.Addresses.Distinct().Select(Managed).ToList();
        var boxes = new List<(string Set, ImmutableArray<Field> Box)>();
        var policy = decision.EffectivePolicy;
        foreach (var rule in policy.Output) AddOutput(self, rule, peers, boxes);
        AddMappedPorts(self, policy.MappedPorts, boxes);

        if (boxes.Count > MaxElements)
            return new(new Fragment(self.Id, [.. managed]),
                $"policy expands to {boxes.Count} set elements, more than the limit of {MaxElements}; dropping all traffic");

        var elements = boxes
            .GroupBy(b => b.Set)
            .SelectMany(g => BoxSet.Disjoint(g.Select(b => b.Box)).Select(box => new Element(g.Key, box)))
            .Concat(managed)
            .Distinct()
            .Order()
            .ToImmutableArray();
        return new(new Fragment(self.Id, elements), null);
    }

    private static Element Managed(IPAddress address)
    {
        var range = AddressRange.Single(address);
        return new Element(NftSets.Managed(range.Family), [Field.Address(range)]);
    }

    private static void AddOutput(ContainerFacts self, OutputRule rule, IReadOnlyCollection<ContainerFacts> peers,
        List<(string, ImmutableArray<Field>)> boxes)
    {
        var sources = AddressesOn(self, rule.Network).Select(AddressRange.Single).ToList();
        var protos = rule.Proto is { } p ? new Field(FieldKind.Proto, (byte)p, (byte)p) : AnyProto;
        var ports = rule.DstPorts.IsEmpty
            ? [AnyPort]
            : rule.DstPorts.Select(r => new Field(FieldKind.Port, r.Lo, r.Hi)).ToList();

        List<AddressRange> destinations;
        if (rule.Container is { } reference)
            destinations = peers.Where(c => c.Running && c.IsNamed(reference, self.ComposeProject))
                .SelectMany(c => AddressesOn(c, rule.Network)).Distinct().Select(AddressRange.Single).ToList();
        else if (!rule.Ips.IsEmpty)
            destinations = [.. rule.Ips];
        else
            destinations = [AddressRange.Any(IpFamily.V4), AddressRange.Any(IpFamily.V6)];

        foreach (var src in sources)
        foreach (var dst in destinations.Where(d => d.Family == src.Family))
        foreach (var port in ports)
        {
            ImmutableArray<Field> box = [Field.Address(src), Field.Address(dst), protos, port];
            boxes.Add((NftSets.Out(src.Family), box));
            if (rule.Container is not null) boxes.Add((NftSets.Peer(src.Family), box));
        }
    }

    private static void AddMappedPorts(ContainerFacts self, MappedPortsPolicy mapped, List<(string, ImmutableArray<Field>)> boxes)
    {
        var published = self.Ports.Select(p => (p.ContainerPort, p.Proto)).Distinct().ToList();
        if (published.Count == 0) return;
        var own = self.Addresses.Distinct().Select(AddressRange.Single).ToList();
        var clients = mapped.ExternalIps.IsEmpty
            ? [AddressRange.Any(IpFamily.V4), AddressRange.Any(IpFamily.V6)]
            : mapped.ExternalIps;

        foreach (var (port, proto) in published)
        {
            var protoField = new Field(FieldKind.Proto, (byte)proto, (byte)proto);
            var portField = new Field(FieldKind.Port, port, port);
            foreach (var addr in own)
            {
                if (mapped.LocalhostAllow)
                    boxes.Add((NftSets.Local(addr.Family), [Field.Address(addr), protoField, portField]));
                if (!mapped.ExternalAllow) continue;
                foreach (var client in clients.Where(c => c.Family == addr.Family))
                    boxes.Add((NftSets.Pub(addr.Family), [Field.Address(client), Field.Address(addr), protoField, portField]));
            }
        }
    }

    private static IEnumerable<IPAddress> AddressesOn(ContainerFacts container, string? network) =>
        container.Networks
            .Where(n => network is null || n.Name == network)
            .SelectMany(n => new[] { n.IPv4, n.IPv6 })
            .OfType<IPAddress>();
}
