using System.Text.Json.Nodes;

namespace WhaleWall.Firewall.Nft;

/// <summary>The constant part of the table: sets and chains (docs/nftables.md). Its size does
/// not depend on the number of containers.</summary>
public static class NftLayout
{
    /// <summary>Base chains run before Docker's filter rules (filter priority 0).</summary>
    public const int Priority = -10;

    /// <summary>Sets and chains: adding them again is a no-op when they exist.</summary>
    public static IEnumerable<JsonObject> Declarations(string table)
    {
        foreach (var set in NftSets.All) yield return NftJson.Command("add", "set", SetObject(table, set));

        yield return BaseChain(table, "forward");
        yield return BaseChain(table, "input");
        yield return BaseChain(table, "output");
        foreach (var name in new[] { "egress", "ingress", "from_host" })
            yield return NftJson.Command("add", "chain", new JsonObject { ["family"] = "inet", ["table"] = table, ["name"] = name });
    }

    /// <summary>The rules: a constant number, whatever the number of containers.</summary>
    public static IEnumerable<JsonObject> Rules(string table)
    {
        yield return Rule(table, "forward", EstablishedAccept(), Verdict("accept"));
        yield return Rule(table, "forward", NeighbourDiscovery(), Verdict("accept"));
        yield return Rule(table, "forward", Match(Payload("ip", "saddr"), "@managed4"), Jump("egress"));
        yield return Rule(table, "forward", Match(Payload("ip6", "saddr"), "@managed6"), Jump("egress"));
        yield return Rule(table, "forward", Match(Payload("ip", "daddr"), "@managed4"), Jump("ingress"));
        yield return Rule(table, "forward", Match(Payload("ip6", "daddr"), "@managed6"), Jump("ingress"));

        yield return Rule(table, "input", EstablishedAccept(), Verdict("accept"));
        yield return Rule(table, "input", NeighbourDiscovery(), Verdict("accept"));
        yield return Rule(table, "input", Match(Payload("ip", "saddr"), "@managed4"), Jump("egress"));
        yield return Rule(table, "input", Match(Payload("ip6", "saddr"), "@managed6"), Jump("egress"));

        yield return Rule(table, "output", EstablishedAccept(), Verdict("accept"));
        yield return Rule(table, "output", NeighbourDiscovery(), Verdict("accept"));
        yield return Rule(table, "output", Match(Payload("ip", "daddr"), "@managed4"), Jump("from_host"));
        yield return Rule(table, "output", Match(Payload("ip6", "daddr"), "@managed6"), Jump("from_host"));

        yield return Rule(table, "egress", Match(Flow("ip"), "@out4"), Verdict("return"));
        yield return Rule(table, "egress", Match(Flow("ip6"), "@out6"), Verdict("return"));
        yield return Rule(table, "egress", Verdict("drop"));

        yield return Rule(table, "ingress", Match(Flow("ip"), "@peer4"), Verdict("return"));
        yield return Rule(table, "ingress", Match(Flow("ip6"), "@peer6"), Verdict("return"));
        yield return Rule(table, "ingress", Dnat(), Match(Flow("ip"), "@pub4"), Verdict("return"));
        yield return Rule(table, "ingress", Dnat(), Match(Flow("ip6"), "@pub6"), Verdict("return"));
        yield return Rule(table, "ingress", Verdict("drop"));

        yield return Rule(table, "from_host", Match(ToService("ip"), "@local4"), Verdict("accept"));
        yield return Rule(table, "from_host", Match(ToService("ip6"), "@local6"), Verdict("accept"));
        yield return Rule(table, "from_host", Verdict("drop"));
    }

    private static JsonObject SetObject(string table, NftSets.SetShape set)
    {
        var types = set.Key.Select(k => (JsonNode)JsonValue.Create(k switch
        {
            FieldKind.Ipv4 => "ipv4_addr",
            FieldKind.Ipv6 => "ipv6_addr",
            FieldKind.Proto => "inet_proto",
            _ => "inet_service",
        })!).ToArray();
        var body = new JsonObject
        {
            ["family"] = "inet",
            ["table"] = table,
            ["name"] = set.Name,
            ["type"] = types.Length == 1 ? types[0] : new JsonArray(types),
        };
        if (set.Interval)
        {
            body["flags"] = new JsonArray("interval");
            body["stmt"] = new JsonArray(new JsonObject { ["counter"] = null });
        }
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

    private static JsonObject Match(JsonNode left, JsonNode right) =>
        new() { ["match"] = new JsonObject { ["op"] = "==", ["left"] = left, ["right"] = right } };

    private static JsonObject Payload(string protocol, string field) =>
        new() { ["payload"] = new JsonObject { ["protocol"] = protocol, ["field"] = field } };

    private static JsonObject L4Proto() => new() { ["meta"] = new JsonObject { ["key"] = "l4proto" } };

    /// <summary><c>saddr . daddr . l4proto . th dport</c></summary>
    private static JsonObject Flow(string ip) => new()
    {
        ["concat"] = new JsonArray(Payload(ip, "saddr"), Payload(ip, "daddr"), L4Proto(), Payload("th", "dport")),
    };

    /// <summary><c>daddr . l4proto . th dport</c></summary>
    private static JsonObject ToService(string ip) => new()
    {
        ["concat"] = new JsonArray(Payload(ip, "daddr"), L4Proto(), Payload("th", "dport")),
    };

    private static JsonObject Jump(string chain) => new() { ["jump"] = new JsonObject { ["target"] = chain } };

    private static JsonObject Verdict(string verdict) => new() { [verdict] = null };
}
