using System.Text.Json.Nodes;

namespace WhaleWall.Firewall.Nft;

/// <summary>The constant part of the table: sets and chains (docs/nftables.md). Its size does
/// not depend on the number of containers.</summary>
public static class NftLayout
{
    /// <summary>Base chains run before Docker's filter rules (filter priority 0).</summary>
    public const int Priority = -10;

    /// <summary>The chains on netfilter hooks (each named for its hook).</summary>
    public static readonly string[] BaseChains = ["forward", "input", "output"];

    /// <summary>The chains WhaleWall owns whatever the containers: flushed and refilled at start-up.</summary>
    public static readonly string[] FixedChains = ["forward", "input", "output", "egress", "ingress", "from_host"];

    /// <summary>egress' per-family shard chains (<c>egress4_0</c> .. <c>egress6_15</c>): egress
    /// goes to the one of the source address's shard (<see cref="NftPlacement.Shards"/>), which
    /// holds the whole egress decision for that family, with that shard's <c>out*</c> set.</summary>
    public static readonly string[] ShardChains =
        [.. new[] { "4", "6" }.SelectMany(f => Enumerable.Range(0, NftPlacement.Shards).Select(k => EgressShard(f, k)))];

    private static string EgressShard(string family, int shard) => $"egress{family}_{shard}";

    /// <summary>The DNS proxy's chains (<see cref="DnsProxyLayout"/>): always there, flushed and
    /// refilled at start-up like the fixed chains; with the proxy off they match nothing (its
    /// sets stay empty).</summary>
    public static readonly string[] ProxyChains = [DnsProxyLayout.RedirectChain, DnsProxyLayout.GuardChain];

    /// <summary>The port the proxy listens on and the redirect goes to.</summary>
    public const int DnsProxyPort = 15353;

    /// <summary>The name prefixes of the per-rule chains WhaleWall makes (<see cref="RuleChain"/>).</summary>
    public static readonly string[] OwnChainPrefixes = [RuleChain.RulePrefix, RuleChain.QueuePrefix];

    /// <summary>True for every chain name WhaleWall makes or may make: a label's
    /// <c>verdict.chain</c> must name none of them (it would jump into another container's
    /// chain, or keep it from being deleted).</summary>
    public static bool IsOwnChain(string name) =>
        FixedChains.Contains(name, StringComparer.Ordinal) || ProxyChains.Contains(name, StringComparer.Ordinal) ||
        ShardChains.Contains(name, StringComparer.Ordinal) ||
        OwnChainPrefixes.Any(prefix => name.StartsWith(prefix, StringComparison.Ordinal));

    /// <summary>Sets, maps and chains: adding them again is a no-op when they exist.</summary>
    public static IEnumerable<JsonObject> Declarations(string table)
    {
        foreach (var command in SetDeclarations(table)) yield return command;

        foreach (var name in FixedChains)
            yield return BaseChains.Contains(name)
                ? BaseChain(table, name)
                : NftJson.Command("add", "chain", new JsonObject { ["family"] = "inet", ["table"] = table, ["name"] = name });
        foreach (var name in ShardChains)
            yield return NftJson.Command("add", "chain", new JsonObject { ["family"] = "inet", ["table"] = table, ["name"] = name });
        foreach (var command in DnsProxyLayout.ChainDeclarations(table)) yield return command;
    }

    /// <summary>The sets and maps alone.</summary>
    public static IEnumerable<JsonObject> SetDeclarations(string table) => SetDeclarations(table, NftSets.Declared);

    internal static IEnumerable<JsonObject> SetDeclarations(string table, IEnumerable<NftSets.SetShape> sets) =>
        sets.Select(set => NftJson.Command("add", set.VerdictMap ? "map" : "set", SetObject(table, set)));

    /// <summary>Prefixes of the optional drop log (<c>WHALEWALL_LOG_DROPS</c>).</summary>
    public const string DropOutLogPrefix = "whalewall drop out: ";
    public const string DropInLogPrefix = "whalewall drop in: ";
    public const string DropFromHostLogPrefix = "whalewall drop from host: ";

    /// <summary>The rules: a constant number, whatever the number of containers. With
    /// <paramref name="logDrops"/>, every packet about to be dropped is logged first (at most
    /// 10/s per chain, burst 20), with a prefix saying which way.</summary>
    public static IEnumerable<JsonObject> Rules(string table, bool logDrops = false)
    {
        // the proxy's port: only queries redirected from port 53 of a proxied container; FIRST
        // (the `@managed jump egress` below would drop those queries, which are egress for them)
        yield return DnsProxyLayout.InputRule(table, DnsProxyPort);
        foreach (var hook in new[] { "forward", "input", "output" })
        {
            // established packets of flows whose rule asked for est queues
            yield return Rule(table, hook, Established(), VerdictMap(CtMark(), "@" + NftSets.EstablishedQueues));
            yield return Rule(table, hook, EstablishedAccept(), Verdict("accept"));
            yield return Rule(table, hook, NeighbourDiscovery(), Verdict("accept"));
        }

        // deny-by-default mode: an address on a gateway network that WhaleWall does not know
        // yet (a container whose rules are not in place) sends nothing
        foreach (var hook in new[] { "forward", "input" })
        {
            yield return Rule(table, hook, Match(Payload("ip", "saddr"), "@gw4"), Match(Payload("ip", "saddr"), "@managed4", "!="), Verdict("drop"));
            yield return Rule(table, hook, Match(Payload("ip6", "saddr"), "@gw6"), Match(Payload("ip6", "saddr"), "@managed6", "!="), Verdict("drop"));
        }

        yield return Rule(table, "forward", Match(Payload("ip", "saddr"), "@managed4"), Jump("egress"));
        yield return Rule(table, "forward", Match(Payload("ip6", "saddr"), "@managed6"), Jump("egress"));
        yield return Rule(table, "forward", Match(Payload("ip", "daddr"), "@managed4"), Jump("ingress"));
        yield return Rule(table, "forward", Match(Payload("ip6", "daddr"), "@managed6"), Jump("ingress"));

        yield return Rule(table, "input", Match(Payload("ip", "saddr"), "@managed4"), Jump("egress"));
        yield return Rule(table, "input", Match(Payload("ip6", "saddr"), "@managed6"), Jump("egress"));

        yield return Rule(table, "output", Match(Payload("ip", "daddr"), "@managed4"), Jump("from_host"));
        yield return Rule(table, "output", Match(Payload("ip6", "daddr"), "@managed6"), Jump("from_host"));

        // egress goes (goto) to the chain of the source address's shard, which decides for good:
        // its return goes back to the base chain (allowed here), and it ends in the drops.
        foreach (var ip in new[] { "ip", "ip6" })
        {
            var f = ip == "ip" ? "4" : "6";
            var dispatch = new JsonArray();
            for (var k = 0; k < NftPlacement.Shards; k++)
                dispatch.Add(new JsonArray(ShardKey(ip, k), new JsonObject { ["goto"] = new JsonObject { ["target"] = EgressShard(f, k) } }));
            yield return Rule(table, "egress", new JsonObject
            {
                ["vmap"] = new JsonObject
                {
                    ["key"] = new JsonObject { ["&"] = new JsonArray(Payload(ip, "saddr"), ShardKey(ip, NftPlacement.ShardMask)) },
                    ["data"] = new JsonObject { ["set"] = dispatch },
                },
            });
        }
        yield return Rule(table, "egress", Verdict("drop")); // not reached: every address has a shard

        // A verdict-map hit goes to the rule's own chain (goto): when that chain ends, the
        // packet continues after the jump into egress, i.e. as allowed here.
        foreach (var ip in new[] { "ip", "ip6" })
        {
            var f = ip == "ip" ? "4" : "6";
            for (var k = 0; k < NftPlacement.Shards; k++)
            {
                var chain = EgressShard(f, k);
                // each logical set is an exact hash twin (no source port) and an interval set (NftPlacement)
                yield return Rule(table, chain, VerdictMap(ExactFlow(ip), "@outvx" + f));
                yield return Rule(table, chain, VerdictMap(Flow(ip), "@outv" + f));
                yield return Rule(table, chain, Match(ExactFlow(ip), "@outx" + f), Verdict("return"));
                yield return Rule(table, chain, Match(Flow(ip), "@" + NftPlacement.ShardName("out" + f, k)), Verdict("return"));
                yield return Rule(table, chain, Match(ExactFlow(ip), "@outhx" + f), Verdict("return"));
                yield return Rule(table, chain, Match(Flow(ip), "@outh" + f), Verdict("return"));
                // audit mode: an audited container's would-be drop is counted in its auditout* element,
                // marked on its flow (the flow recorder reads the mark from conntrack) and passes; the
                // return goes back to the base chain, where the destination's ingress still applies
                yield return Rule(table, chain, Match(Payload(ip, "saddr"), "@auditout" + f), MarkAudit(), Verdict("return"));
                // counted drops: the lookup bumps the container's element in dropout*, then drop
                if (logDrops) yield return Rule(table, chain, RateLimit(), Log(DropOutLogPrefix));
                yield return Rule(table, chain, Match(Payload(ip, "saddr"), "@dropout" + f), Verdict("drop"));
                yield return Rule(table, chain, Verdict("drop"));
            }
        }

        foreach (var ip in new[] { "ip", "ip6" })
        {
            var f = ip == "ip" ? "4" : "6";
            yield return Rule(table, "ingress", Match(ExactFlow(ip), "@peerx" + f), Verdict("return"));
            yield return Rule(table, "ingress", Match(Flow(ip), "@peer" + f), Verdict("return"));
            yield return Rule(table, "ingress", Match(Published(ip), "@in" + f), Verdict("return"));
            yield return Rule(table, "ingress", Dnat(), VerdictMap(Published(ip), "@pubv" + f));
            yield return Rule(table, "ingress", Dnat(), Match(Published(ip), "@pub" + f), Verdict("return"));
        }
        yield return Rule(table, "ingress", Match(Payload("ip", "daddr"), "@auditin4"), MarkAudit(), Verdict("return"));
        yield return Rule(table, "ingress", Match(Payload("ip6", "daddr"), "@auditin6"), MarkAudit(), Verdict("return"));
        if (logDrops) yield return Rule(table, "ingress", RateLimit(), Log(DropInLogPrefix));
        yield return Rule(table, "ingress", Match(Payload("ip", "daddr"), "@dropin4"), Verdict("drop"));
        yield return Rule(table, "ingress", Match(Payload("ip6", "daddr"), "@dropin6"), Verdict("drop"));
        yield return Rule(table, "ingress", Verdict("drop"));

        foreach (var ip in new[] { "ip", "ip6" })
        {
            var f = ip == "ip" ? "4" : "6";
            yield return Rule(table, "from_host", VerdictMap(ToService(ip), "@localvx" + f));
            yield return Rule(table, "from_host", VerdictMap(ToService(ip), "@localv" + f));
            yield return Rule(table, "from_host", Match(ToService(ip), "@localx" + f), Verdict("accept"));
            yield return Rule(table, "from_host", Match(ToService(ip), "@local" + f), Verdict("accept"));
        }
        yield return Rule(table, "from_host", Match(Payload("ip", "daddr"), "@auditin4"), MarkAudit(), Verdict("accept"));
        yield return Rule(table, "from_host", Match(Payload("ip6", "daddr"), "@auditin6"), MarkAudit(), Verdict("accept"));
        if (logDrops) yield return Rule(table, "from_host", RateLimit(), Log(DropFromHostLogPrefix));
        yield return Rule(table, "from_host", Match(Payload("ip", "daddr"), "@dropin4"), Verdict("drop"));
        yield return Rule(table, "from_host", Match(Payload("ip6", "daddr"), "@dropin6"), Verdict("drop"));
        yield return Rule(table, "from_host", Verdict("drop"));

        foreach (var rule in DnsProxyLayout.Rules(table, DnsProxyPort)) yield return rule;
    }

    /// <summary>The rules of one of WhaleWall's per-rule chains.</summary>
    public static IEnumerable<JsonObject> ChainRules(string table, RuleChain chain)
    {
        if (chain.LogPrefix is { } prefix)
            yield return Rule(table, chain.Name, RateLimit(), Log(prefix));
        if (chain.SetMark is { } mark)
            yield return Rule(table, chain.Name,
                new JsonObject { ["mangle"] = new JsonObject { ["key"] = CtMark(), ["value"] = mark } });
        if (chain.Jump is { } target) yield return Rule(table, chain.Name, Jump(target));
        if (chain.Queue is { } queue) yield return Rule(table, chain.Name, QueueTo(queue));
        if (chain.OriginalQueue is { } original)
            yield return Rule(table, chain.Name, Match(new JsonObject { ["ct"] = new JsonObject { ["key"] = "direction" } }, "original"), QueueTo(original));
        if (chain.ReplyQueue is { } reply) yield return Rule(table, chain.Name, QueueTo(reply));
    }

    private static JsonObject RateLimit() => new() { ["limit"] = new JsonObject { ["rate"] = 10, ["per"] = "second", ["burst"] = 20 } };

    private static JsonObject Log(string prefix) => new() { ["log"] = new JsonObject { ["prefix"] = prefix } };

    private static JsonObject QueueTo(ushort queue) => new() { ["queue"] = new JsonObject { ["num"] = queue } };

    /// <summary><c>ct mark set ct mark | 0x40000000</c> (<see cref="NftSets.AuditMark"/>): other bits kept.</summary>
    private static JsonObject MarkAudit() => new()
    {
        ["mangle"] = new JsonObject { ["key"] = CtMark(), ["value"] = new JsonObject { ["|"] = new JsonArray(CtMark(), NftSets.AuditMark) } },
    };

    private static JsonObject CtMark() => new() { ["ct"] = new JsonObject { ["key"] = "mark" } };

    private static JsonObject Established() =>
        new() { ["match"] = new JsonObject { ["op"] = "in", ["left"] = new JsonObject { ["ct"] = new JsonObject { ["key"] = "state" } }, ["right"] = "established" } };

    private static JsonObject VerdictMap(JsonNode key, string map) =>
        new() { ["vmap"] = new JsonObject { ["key"] = key, ["data"] = map } };

    private static JsonObject SetObject(string table, NftSets.SetShape set)
    {
        var types = set.Key.Select(k => (JsonNode)JsonValue.Create(k switch
        {
            FieldKind.Ipv4 => "ipv4_addr",
            FieldKind.Ipv6 => "ipv6_addr",
            FieldKind.Proto => "inet_proto",
            FieldKind.Mark => "mark",
            _ => "inet_service",
        })!).ToArray();
        var body = new JsonObject
        {
            ["family"] = "inet",
            ["table"] = table,
            ["name"] = set.Name,
            ["type"] = types.Length == 1 ? types[0] : new JsonArray(types),
        };
        if (set.VerdictMap) body["map"] = "verdict";
        if (set.Interval || set.Timeout)
        {
            var flags = new JsonArray();
            if (set.Interval) flags.Add("interval");
            if (set.Timeout) flags.Add("timeout");
            body["flags"] = flags;
        }
        if (set.HasCounters) body["stmt"] = new JsonArray(new JsonObject { ["counter"] = null });
        return body;
    }

    private static JsonObject BaseChain(string table, string hook) => NftJson.Command("add", "chain", new JsonObject
    {
        ["family"] = "inet",
        ["table"] = table,
        ["name"] = hook,
        ["type"] = "filter",
        ["hook"] = hook,
        ["prio"] = Priority,
        ["policy"] = "accept",
    });

    private static JsonObject Rule(string table, string chain, params JsonObject[] expr) => NftJson.Command("add", "rule", new JsonObject
    {
        ["family"] = "inet",
        ["table"] = table,
        ["chain"] = chain,
        ["expr"] = new JsonArray(expr),
    });

    private static JsonObject EstablishedAccept() =>
        new() { ["match"] = new JsonObject { ["op"] = "in", ["left"] = new JsonObject { ["ct"] = new JsonObject { ["key"] = "state" } }, ["right"] = new JsonArray("established", "related") } };

    /// <summary>IPv6 neighbour and router discovery: without it nothing reaches a container's
    /// IPv6 address, allowed or not. Link-local in scope, so it opens no path.</summary>
    private static JsonObject NeighbourDiscovery() =>
        Match(Payload("icmpv6", "type"), new JsonObject
        {
            ["set"] = new JsonArray("nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert"),
        });

    private static JsonObject Dnat() =>
        new() { ["match"] = new JsonObject { ["op"] = "in", ["left"] = new JsonObject { ["ct"] = new JsonObject { ["key"] = "status" } }, ["right"] = "dnat" } };

    private static JsonObject Match(JsonNode left, JsonNode right, string op = "==") =>
        new() { ["match"] = new JsonObject { ["op"] = op, ["left"] = left, ["right"] = right } };

    private static JsonObject Payload(string protocol, string field) =>
        new() { ["payload"] = new JsonObject { ["protocol"] = protocol, ["field"] = field } };

    private static JsonObject L4Proto() => new() { ["meta"] = new JsonObject { ["key"] = "l4proto" } };

    /// <summary><c>saddr . daddr . l4proto . th sport . th dport</c>. For ICMP the "source port"
    /// is the type and code (type * 256 + code), so one key serves ports and ICMP types.</summary>
    private static JsonObject Flow(string ip) => new()
    {
        ["concat"] = new JsonArray(Payload(ip, "saddr"), Payload(ip, "daddr"), L4Proto(), Payload("th", "sport"), Payload("th", "dport")),
    };

    /// <summary>The exact twins' flow key (<see cref="NftPlacement"/>): <c>saddr . daddr . l4proto . th dport</c>.</summary>
    private static JsonObject ExactFlow(string ip) => Published(ip);

    /// <summary><c>saddr . daddr . l4proto . th dport</c></summary>
    private static JsonObject Published(string ip) => new()
    {
        ["concat"] = new JsonArray(Payload(ip, "saddr"), Payload(ip, "daddr"), L4Proto(), Payload("th", "dport")),
    };

    /// <summary><c>daddr . l4proto . th dport</c></summary>
    private static JsonObject ToService(string ip) => new()
    {
        ["concat"] = new JsonArray(Payload(ip, "daddr"), L4Proto(), Payload("th", "dport")),
    };

    /// <summary>Shard <paramref name="k"/> as an address of the family (the dispatch's key and mask).</summary>
    private static string ShardKey(string ip, int k) =>
        ip == "ip" ? $"0.0.0.{k}" : $"::{k:x}";

    private static JsonObject Jump(string chain) => new() { ["jump"] = new JsonObject { ["target"] = chain } };

    private static JsonObject Verdict(string verdict) => new() { [verdict] = null };
}
