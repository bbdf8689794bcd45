using System.Collections.Immutable;
using System.Net;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Names;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Explain;

/// <summary>
/// Why a packet is accepted or dropped. Pure and total. Every container's policy comes from the
/// one decision entry point (<see cref="ContainerDecider.Decide"/>) and is compiled by the real
/// <see cref="Compiler"/>, exactly as the daemon does; the packet is then walked through the
/// table's chains (docs/nftables.md) against those compiled elements, so explain and the kernel
/// cannot disagree about what the elements allow. A matching element is mapped back to its rule
/// by compiling each rule of its owner alone and asking which one covers the packet.
/// </summary>
public static class Explainer
{
    public static Explanation Explain(ExplainInput input, ExplainQuery query) => new World(input).Explain(query);

    /// <summary>The containers, their decisions and compiled elements, computed once each.</summary>
    private sealed class World(ExplainInput input)
    {
        private readonly ContainerFacts self = input.Self;
        private readonly List<ContainerFacts> others = [.. input.Others.IsDefault ? [] : input.Others
            .Take(ExplainInput.MaxOthers).Where(o => o.Id != input.Self.Id)];
        private readonly Dictionary<string, (Decision Decision, CompileResult Compiled)> cache = [];

        private (Decision Decision, CompileResult Compiled) Of(ContainerFacts c)
        {
            if (cache.TryGetValue(c.Id, out var known)) return known;
            var decision = ContainerDecider.Decide(input.Context, c);
            var compiled = Compiler.Compile(c, decision.Policy, Peers(c), HostsOf(c, decision), null, proxied: decision.Dns is not null,
                audit: decision.Mode == PolicyMode.Audit);
            return cache[c.Id] = (decision, compiled);
        }

        private List<ContainerFacts> Peers(ContainerFacts c) => c.Id == self.Id ? others : [self, .. others.Where(o => o.Id != c.Id)];

        private ImmutableArray<DnsLookup> Lookups => input.Lookups.IsDefault ? [] : [.. input.Lookups.Take(ExplainInput.MaxLookups)
            .Where(l => l.Expires > input.Now)];

        /// <summary>What the compiler gets for <c>hosts:</c> rules: the daemon's resolutions, plus,
        /// for the container itself while it is proxied, its own lookups under each entry that
        /// matches them (as the daemon's container actor merges them).</summary>
        private IReadOnlyDictionary<string, HostAddresses> HostsOf(ContainerFacts c, Decision decision)
        {
            var hosts = new Dictionary<string, HostAddresses>(StringComparer.Ordinal);
            foreach (var (name, resolved) in input.Resolved ?? new Dictionary<string, HostAddresses>())
                hosts[name] = resolved with { Addresses = [.. resolved.Addresses.Where(a => a.Expires > input.Now)] };
            if (c.Id != self.Id || decision.Dns is null) return hosts;
            foreach (var entry in decision.Policy.EffectivePolicy.Output.SelectMany(r => r.HostsOrEmpty).Distinct())
            {
                if (!NamePattern.TryParse(entry, out var pattern, out _)) continue;
                var learned = Lookups.Where(l => DnsName.TryParse(l.Name, out var n, out _) && pattern.Matches(n))
                    .Select(l => (l.Address, l.Expires)).ToList();
                if (learned.Count == 0) continue;
                var own = hosts.TryGetValue(entry, out var r) ? r.Addresses : [];
                hosts[entry] = new HostAddresses(entry, [.. own, .. learned]);
            }
            return hosts;
        }

        public Explanation Explain(ExplainQuery query)
        {
            var (decision, compiled) = Of(self);
            var outcome = decision.After(compiled);
            var notes = new List<string>();
            Explanation Result(bool accepted, bool passes, string reason, ImmutableArray<Hop> hops = default, RuleSource? rule = null,
                string? owner = null, ImmutableArray<Element> elements = default, ImmutableArray<DnsLookup> dns = default, string? packet = null) =>
                new(self.Name, query, outcome, decision.Mode, accepted, passes, reason, rule, owner,
                    elements.IsDefault ? [] : elements, hops.IsDefault ? [] : hops, dns.IsDefault ? [] : dns, [.. notes], packet);

            if (outcome == Outcome.Unmanaged) notes.Add($"{self.Name} is not managed: WhaleWall does not filter its own traffic");
            if (decision.Mode == PolicyMode.Audit) notes.Add($"{self.Name} is in audit mode: what its policy drops passes and is counted");
            if (!self.Running) notes.Add($"{self.Name} is not running: none of its elements are in the kernel");

            // a container whose traffic WhaleWall does not see is not filtered, whatever its labels say
            var seen = Visibility.Filterable(self).Addresses.ToHashSet();
            if (outcome == Outcome.Unfilterable && seen.Count == 0)
                return Result(true, false, "unfilterable: " + string.Join("; ", decision.Reasons(compiled)));

            var candidates = Endpoints(query, notes, out var refusal);
            if (refusal is not null) return Result(false, false, refusal);
            var results = new List<Explanation>();
            foreach (var (packet, lookup) in candidates)
            {
                if (outcome == Outcome.Unfilterable && !seen.Contains(query.Direction == Direction.Egress ? packet.Src : packet.Dst))
                {
                    results.Add(Result(true, false, "unfilterable: " + string.Join("; ", decision.Reasons(compiled)),
                        dns: lookup is null ? [] : [lookup], packet: packet.ToString()));
                    continue;
                }
                var hops = Walk(packet);
                var dropped = hops.FirstOrDefault(h => !h.Accepted);
                var deciding = dropped ?? hops.LastOrDefault(h => h.Rule is not null && h.Owner == self.Name && OwnDirection(h, query))
                    ?? hops.LastOrDefault(h => h.Rule is not null) ?? hops.LastOrDefault();
                var accepted = dropped is null;
                // audit mode: it gets through only if every chain that drops it is an audited container's
                var passes = dropped is not null && hops.Where(h => !h.Accepted).All(h => h.Owner is { } o && ModeOf(o) == PolicyMode.Audit);
                var reason = deciding?.Reason ?? (outcome == Outcome.Unmanaged ? "unmanaged: not filtered" : "not filtered: no WhaleWall chain decides it");
                results.Add(Result(accepted, passes, reason, [.. hops], deciding?.Rule, deciding?.Rule is null ? null : deciding.Owner,
                    [.. hops.SelectMany(h => h.Elements).Distinct()], lookup is null ? [] : [lookup], packet.ToString()));
            }
            // a name with several addresses: dropped when any of them is
            var chosen = results.FirstOrDefault(r => !r.Accepted) ?? results[0];
            if (results.Count > 1)
                chosen = chosen with
                {
                    Notes = chosen.Notes.AddRange(results.Where(r => r != chosen).Select(r => $"also {r.Packet}: {r.Verdict}")),
                    Dns = [.. results.SelectMany(r => r.Dns).Distinct()],
                };
            return chosen;
        }

        private static bool OwnDirection(Hop h, ExplainQuery q) =>
            q.Direction == Direction.Egress ? h.Chain == "egress" : h.Chain is "ingress" or "from_host";

        private PolicyMode ModeOf(string name) =>
            name == self.Name ? Of(self).Decision.Mode
            : others.FirstOrDefault(o => o.Name == name) is { } c ? Of(c).Decision.Mode : PolicyMode.Enforce;

        /// <summary>The packet(s) the query stands for: which address of the container, which of
        /// the peer (a name may have several), or why there is none.</summary>
        private List<(Packet Packet, DnsLookup? Lookup)> Endpoints(ExplainQuery q, List<string> notes, out string? refusal)
        {
            refusal = null;
            var result = new List<(Packet, DnsLookup?)>();
            var peer = q.Peer.Trim();
            var (sLo, sHi, dLo, dHi) = q.Proto is L4Proto.Icmp or L4Proto.Icmpv6
                ? ((UInt128)q.Port * 256, (UInt128)q.Port * 256, UInt128.Zero, (UInt128)ushort.MaxValue)
                : (q.SourcePort is { } sp ? ((UInt128)sp, (UInt128)sp) : ((UInt128)ExplainQuery.EphemeralLo, (UInt128)ExplainQuery.EphemeralHi))
                    is var (a, b) ? (a, b, (UInt128)q.Port, (UInt128)q.Port) : default;
            Packet Make(IPAddress src, IPAddress dst, bool dnat = false, bool fromHost = false) =>
                new(src, dst, q.Proto, sLo, sHi, dLo, dHi, dnat, fromHost);

            if (q.Direction == Direction.Ingress && peer.Equals(ExplainQuery.Host, StringComparison.OrdinalIgnoreCase))
            {
                var own = FamilyOk(q, self.Addresses).FirstOrDefault();
                if (own is null) { refusal = $"{self.Name} has no address for {Explanation.Proto(q.Proto)}"; return result; }
                result.Add((Make(own, own, fromHost: true), null));
                return result;
            }
            if (Addresses.TryParse(peer, out var address))
            {
                var owner = others.FirstOrDefault(o => o.Addresses.Contains(address));
                if (owner is not null) notes.Add($"{address} is {owner.Name}'s address");
                if (q.Direction == Direction.Egress)
                {
                    if (Near(self, address) is not { } src) { refusal = $"{self.Name} has no address of {address}'s family"; return result; }
                    result.Add((Make(src, address), null));
                }
                else
                {
                    var dst = Near(self, address);
                    if (dst is null) { refusal = $"{self.Name} has no address of {address}'s family"; return result; }
                    // from outside its subnets only through a published port (Docker's DNAT)
                    var onSubnet = self.Networks.Any(n => InSubnet(n, address));
                    var published = self.Ports.Any(p => p.ContainerPort == q.Port && p.Proto == q.Proto);
                    result.Add((Make(address, dst, dnat: !onSubnet && published), null));
                }
                return result;
            }
            if (others.Where(o => o.IsNamed(peer, self.ComposeProject)).OrderByDescending(o => o.Running).FirstOrDefault() is { } other)
            {
                if (!other.Running) notes.Add($"{other.Name} is not running");
                var pair = q.Direction == Direction.Egress ? Pair(q, self, other) : Pair(q, other, self);
                if (pair is null) { refusal = $"{self.Name} and {other.Name} share no address family on any network"; return result; }
                result.Add((Make(pair.Value.Src, pair.Value.Dst), null));
                return result;
            }
            if (q.Direction == Direction.Ingress)
            {
                refusal = $"\"{SafeText.Escape(peer, 80)}\" is neither an address, a known container, nor host";
                return result;
            }
            if (!DnsName.TryParse(peer.TrimEnd('.').ToLowerInvariant(), out var name, out _))
            {
                refusal = $"\"{SafeText.Escape(peer, 80)}\" is neither an address, a known container, nor a DNS name";
                return result;
            }
            var lookups = Lookups.Where(l => DnsName.TryParse(l.Name.TrimEnd('.').ToLowerInvariant(), out var n, out _) && n.Equals(name))
                .Select(l => (l.Address, Lookup: (DnsLookup?)l)).ToList();
            if (input.Resolved?.GetValueOrDefault(name.Value) is { } resolved)
                lookups.AddRange(resolved.Addresses.Where(a => a.Expires > input.Now && lookups.All(l => !l.Address.Equals(a.Address)))
                    .Select(a => (a.Address, Lookup: (DnsLookup?)null)));
            foreach (var (found, lookup) in lookups.Take(64))
                if (Near(self, found) is { } src && FamilyOk(q, [found]).Any()) result.Add((Make(src, found), lookup));
            if (result.Count == 0) refusal = NoAddress(name);
            return result;
        }

        private string NoAddress(DnsName name)
        {
            var decision = Of(self).Decision;
            var entries = decision.Policy.EffectivePolicy.Output.SelectMany(r => r.HostsOrEmpty).Distinct()
                .Where(e => NamePattern.TryParse(e, out var p, out _) && p.Matches(name)).ToList();
            if (decision.Dns is { } dns)
                return entries.Count > 0 || dns.Names.Matches(name)
                    ? $"{name} has no address from a lookup of {self.Name}'s own that is still open: its lookup through the DNS proxy would open it (hosts entry {string.Join(", ", entries)})"
                    : $"the DNS proxy refuses {name} to {self.Name}: no hosts entry of its rules matches it, so no address of it is ever opened";
            return entries.Count > 0
                ? $"WhaleWall has no current address of {name} (not resolved yet, or its answer expired)"
                : $"no rule of {self.Name} names {name}: default drop";
        }

        private static IEnumerable<IPAddress> FamilyOk(ExplainQuery q, IEnumerable<IPAddress> addresses) => addresses.Where(a =>
            q.Proto switch
            {
                L4Proto.Icmp => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork,
                L4Proto.Icmpv6 => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6,
                _ => true,
            });

        private static bool InSubnet(NetworkAttachment n, IPAddress address)
        {
            var target = AddressRange.Single(address);
            foreach (var (own, prefix) in new[] { (n.IPv4, n.IPv4Prefix), (n.IPv6, n.IPv6Prefix) })
                if (own is not null && AddressRange.Single(own) is var r && r.Family == target.Family &&
                    Compiler.Subnet(r, prefix) is var s && s.Lo <= target.Lo && target.Lo <= s.Hi)
                    return true;
            return false;
        }

        /// <summary>The container's address facing <paramref name="peer"/>: on the network whose
        /// subnet holds it, else its first of the same family.</summary>
        private static IPAddress? Near(ContainerFacts c, IPAddress peer)
        {
            var family = peer.AddressFamily;
            var on = c.Networks.FirstOrDefault(n => InSubnet(n, peer));
            var own = on is null ? null : family == System.Net.Sockets.AddressFamily.InterNetwork ? on.IPv4 : on.IPv6;
            return own ?? c.Addresses.FirstOrDefault(a => a.AddressFamily == family);
        }

        /// <summary>Addresses of two containers on a network they share (IPv4 first), else of one family.</summary>
        private static (IPAddress Src, IPAddress Dst)? Pair(ExplainQuery q, ContainerFacts from, ContainerFacts to)
        {
            foreach (var n in from.Networks)
                foreach (var m in to.Networks.Where(m => m.Name == n.Name))
                    foreach (var (a, b) in new[] { (n.IPv4, m.IPv4), (n.IPv6, m.IPv6) })
                        if (a is not null && b is not null && FamilyOk(q, [a]).Any()) return (a, b);
            foreach (var a in FamilyOk(q, from.Addresses))
                if (to.Addresses.FirstOrDefault(b => b.AddressFamily == a.AddressFamily) is { } b) return (a, b);
            return null;
        }

        private ContainerFacts? Owning(IPAddress address) =>
            self.Addresses.Contains(address) ? self : others.Where(o => o.Running).FirstOrDefault(o => o.Addresses.Contains(address));

        /// <summary>The packet through the table's chains, as docs/nftables.md lists them.</summary>
        private List<Hop> Walk(Packet p)
        {
            var hops = new List<Hop>();
            var family = AddressRange.Single(p.Src).Family;
            var src = Owning(p.Src);
            var dst = Owning(p.Dst);
            var srcFragment = src is null ? null : Of(src).Compiled.Fragment;
            var dstFragment = dst is null ? null : Of(dst).Compiled.Fragment;
            bool Holds(Fragment? f, string set, IPAddress a) =>
                f is not null && f.Elements.Any(e => e.Set == set && e.Fields.Length == 1 && BoxSet.Contains(e.Fields, [AddressRange.Single(a).Lo]));

            if (p.FromHost)
            {
                var local = Cover(dstFragment, [NftSets.LocalVerdict(family), NftSets.Local(family)], p.LocalBox);
                if (!Holds(dstFragment, NftSets.Managed(family), p.Dst))
                    hops.Add(new Hop("output", dst?.Name, true, $"{dst?.Name ?? p.Dst.ToString()} is not under policy: not filtered", null, []));
                else if (local.Covered)
                    hops.Add(new Hop("from_host", dst!.Name, true, $"allowed from the host by {dst.Name}'s mapped_ports.localhost",
                        Of(dst).Decision.Policy.EffectivePolicy.MappedPorts.Localhost.Source, local.Used));
                else hops.Add(Drop("from_host", dst!, p, "no mapped_ports.localhost allows it from the host (or the port is not published)"));
                return hops;
            }

            // the DNS proxy takes every port-53 packet of a proxied container before anything else
            if (p.Proto is L4Proto.Tcp or L4Proto.Udp && p.DportLo == 53 && p.DportHi == 53 && Holds(srcFragment, NftSets.DnsProxy(family), p.Src))
            {
                var dns = Of(src!).Decision.Dns!;
                var element = srcFragment!.Elements.First(e => e.Set == NftSets.DnsProxy(family) && BoxSet.Contains(e.Fields, [AddressRange.Single(p.Src).Lo]));
                hops.Add(new Hop("dns_redirect", src!.Name, true,
                    $"redirected to WhaleWall's DNS proxy, whatever the address: it answers {(dns.ResolveAny ? "any name" : "only the names of its hosts: entries")}, " +
                    $"and only names of its hosts: entries open addresses ({(dns.Names.IsEmpty ? "none" : string.Join(", ", dns.Names.Patterns))})",
                    null, [element]));
                return hops;
            }

            var managedSrc = Holds(srcFragment, NftSets.Managed(family), p.Src);
            if (!managedSrc && input.Context.Gateway is not null && Gateway(family).Any(g => g.Lo <= AddressRange.Single(p.Src).Lo && AddressRange.Single(p.Src).Lo <= g.Hi))
            {
                hops.Add(new Hop("forward", src?.Name, false,
                    $"deny-by-default mode: {p.Src} is on a gateway network and not a container under policy (gw{(family == IpFamily.V4 ? 4 : 6)})", null, []));
                return hops;
            }
            if (managedSrc)
            {
                var sets = new[] { NftSets.OutVerdict(family), NftSets.Out(family), NftSets.OutHosts(family) };
                var cover = Cover(srcFragment, sets, p.FlowBox);
                if (!cover.Covered)
                {
                    hops.Add(Drop("egress", src!, p, $"no rule of {src!.Name} allows it"));
                    // an audited sender's would-be drop returns to forward: the receiver's ingress still decides
                    if (Of(src!).Decision.Mode != PolicyMode.Audit) return hops;
                }
                else
                {
                    var (rule, why) = EgressRule(src!, p, sets);
                    hops.Add(new Hop("egress", src!.Name, true, why, rule, cover.Used));
                }
            }
            if (Holds(dstFragment, NftSets.Managed(family), p.Dst))
            {
                var peer = Cover(srcFragment, [NftSets.Peer(family)], p.FlowBox);
                if (peer.Covered)
                {
                    var (rule, why) = PeerRule(src!, dst!, p);
                    hops.Add(new Hop("ingress", src!.Name, true, why, rule, peer.Used));
                    return hops;
                }
                var neighbour = Cover(dstFragment, [NftSets.In(family)], p.PublishedBox);
                if (neighbour.Covered)
                {
                    hops.Add(new Hop("ingress", dst!.Name, true, $"deny-by-default mode: {dst.Name} talks freely with its gateway networks' containers",
                        NeighbourSource(dst), neighbour.Used));
                    return hops;
                }
                if (p.Dnat)
                {
                    var pub = Cover(dstFragment, [NftSets.PubVerdict(family), NftSets.Pub(family)], p.PublishedBox);
                    if (pub.Covered)
                    {
                        hops.Add(new Hop("ingress", dst!.Name, true, $"a published port of {dst.Name}, allowed by its mapped_ports.external",
                            Of(dst).Decision.Policy.EffectivePolicy.MappedPorts.External.Source, pub.Used));
                        return hops;
                    }
                }
                hops.Add(Drop("ingress", dst!, p, p.Dnat
                    ? $"no mapped_ports.external of {dst!.Name} allows it from {p.Src}"
                    : $"nothing lets {p.Src} in: no container: rule of the sender names {dst!.Name}" +
                      (dst.Ports.Any(x => x.ContainerPort == p.DportLo) ? " (a published port opens only to traffic through Docker's DNAT)" : "")));
            }
            return hops;
        }

        private IEnumerable<AddressRange> Gateway(IpFamily family)
        {
            if (!input.GatewaySubnets.IsDefaultOrEmpty) return input.GatewaySubnets.Where(g => g.Family == family);
            // not told: the subnets of the gateway networks the known containers are attached to
            var gateway = input.Context.Gateway!;
            return others.Append(self).SelectMany(c => c.Networks).Where(gateway.IsGateway)
                .SelectMany(n => new[] { (n.IPv4, n.IPv4Prefix), (n.IPv6, n.IPv6Prefix) })
                .Where(x => x.Item1 is not null).Select(x => Compiler.Subnet(AddressRange.Single(x.Item1!), x.Item2))
                .Where(r => r.Family == family).Distinct();
        }

        private Hop Drop(string chain, ContainerFacts owner, Packet p, string why)
        {
            var (decision, compiled) = Of(owner);
            // what counts it: the audit element of an audited container (it passes), else the drop counter
            var audited = decision.Mode == PolicyMode.Audit;
            var dropSet = chain == "egress" ? audited ? NftSets.AuditOut : NftSets.DropOut
                : audited ? NftSets.AuditIn : (Func<IpFamily, string>)NftSets.DropIn;
            var address = chain == "egress" ? p.Src : p.Dst;
            var counter = compiled.Fragment.Elements.Where(e => e.Set == dropSet(AddressRange.Single(address).Family) &&
                BoxSet.Contains(e.Fields, [AddressRange.Single(address).Lo])).ToImmutableArray();
            var reason = decision.After(compiled) == Outcome.FailClosed
                ? $"fail-closed: {owner.Name}'s labels are invalid, everything is dropped: {string.Join("; ", decision.Reasons(compiled))}"
                : $"{why}: default drop";
            if (decision.Mode == PolicyMode.Audit) reason += $" ({owner.Name} is in audit mode: it passes and is counted)";
            return new Hop(chain, owner.Name, false, reason, null, counter);
        }

        /// <summary>The first rule of <paramref name="owner"/> that allows the packet on its own.</summary>
        private (RuleSource? Rule, string Why) EgressRule(ContainerFacts owner, Packet p, string[] sets)
        {
            var (decision, _) = Of(owner);
            var policy = decision.Policy.EffectivePolicy;
            foreach (var rule in policy.Output)
            {
                var alone = ContainerPolicy.DropAll with { Output = [rule] };
                if (Cover(CompileAlone(owner, decision, alone), sets, p.FlowBox).Covered)
                    return (rule.Source, $"allowed by {owner.Name}'s {Describe(rule)}");
            }
            if (!policy.NeighbourNetworksOrEmpty.IsEmpty &&
                Cover(CompileAlone(owner, decision, ContainerPolicy.DropAll with { NeighbourNetworks = policy.NeighbourNetworks }), sets, p.FlowBox).Covered)
                return (NeighbourSource(owner), $"deny-by-default mode: {owner.Name} talks freely with its gateway networks' containers");
            return (null, $"allowed by {owner.Name}'s rules together (no single rule covers every source port)");
        }

        private (RuleSource? Rule, string Why) PeerRule(ContainerFacts sender, ContainerFacts receiver, Packet p)
        {
            var (decision, _) = Of(sender);
            foreach (var rule in decision.Policy.EffectivePolicy.Output.Where(r => r.Container is not null))
                if (Cover(CompileAlone(sender, decision, ContainerPolicy.DropAll with { Output = [rule] }), [NftSets.Peer(AddressRange.Single(p.Src).Family)], p.FlowBox).Covered)
                    return (rule.Source, $"{sender.Name}'s container: {rule.Container} rule names {receiver.Name}, which opens its ingress (peer)");
            return (null, $"{sender.Name}'s container: rules name {receiver.Name}, which opens its ingress (peer)");
        }

        private static RuleSource NeighbourSource(ContainerFacts c) =>
            new("GATEWAY_NETWORKS", string.Join(",", c.Networks.Select(n => n.Name)), null);

        private Fragment CompileAlone(ContainerFacts owner, Decision decision, ContainerPolicy policy) =>
            Compiler.Compile(owner, new PolicyDecision.Enforced(policy), Peers(owner), HostsOf(owner, decision), null,
                proxied: decision.Dns is not null).Fragment;

        private static string Describe(OutputRule rule) =>
            rule.Source is { } s ? s.ToString() : rule.ToResolvers ? "_dns_ (its resolvers)" : "rule";

        /// <summary>Whether the elements of <paramref name="sets"/> in <paramref name="fragment"/>
        /// together hold every point of <paramref name="box"/>, and which of them touch it.
        /// Bounded: at most 4,096 pieces are tracked (beyond that the answer is "not covered").</summary>
        private static (bool Covered, ImmutableArray<Element> Used) Cover(Fragment? fragment, string[] sets, ImmutableArray<Field> box)
        {
            if (fragment is null) return (false, []);
            var remaining = new List<ImmutableArray<Field>> { box };
            var used = ImmutableArray.CreateBuilder<Element>();
            foreach (var set in sets)
                foreach (var e in fragment.Elements)
                {
                    if (e.Set != set || e.Fields.Length != box.Length || !BoxSet.Intersects(e.Fields, box)) continue;
                    used.Add(e);
                    remaining = [.. remaining.SelectMany(r => BoxSet.Subtract(r, e.Fields))];
                    if (remaining.Count == 0) return (true, used.ToImmutable());
                    if (remaining.Count > 4096) return (false, used.ToImmutable());
                }
            return (false, used.ToImmutable());
        }
    }

    /// <summary>One packet of the flow: the source port an interval (any ephemeral port unless
    /// given), for ICMP the type as the "source port" and any "destination port".</summary>
    private sealed record Packet(IPAddress Src, IPAddress Dst, L4Proto Proto, UInt128 SportLo, UInt128 SportHi,
        UInt128 DportLo, UInt128 DportHi, bool Dnat, bool FromHost)
    {
        private Field S => Field.Address(AddressRange.Single(Src));
        private Field D => Field.Address(AddressRange.Single(Dst));
        private Field P => new(FieldKind.Proto, (byte)Proto, (byte)Proto);

        public ImmutableArray<Field> FlowBox => [S, D, P, new(FieldKind.Port, SportLo, SportHi), new(FieldKind.Port, DportLo, DportHi)];
        public ImmutableArray<Field> PublishedBox => [S, D, P, new(FieldKind.Port, DportLo, DportHi)];
        public ImmutableArray<Field> LocalBox => [D, P, new(FieldKind.Port, DportLo, DportHi)];

        public override string ToString() => Proto is L4Proto.Icmp or L4Proto.Icmpv6
            ? $"{(FromHost ? "host" : Src.ToString())} -> {Dst} {Explanation.Proto(Proto)} type {SportLo / 256}"
            : $"{(FromHost ? "host" : Src.ToString())}:{(SportLo == SportHi ? SportLo.ToString() : $"{SportLo}-{SportHi}")} -> {Dst}:{DportLo} " +
              $"{Explanation.Proto(Proto)}{(Dnat ? " (through Docker's DNAT)" : "")}";
    }
}
