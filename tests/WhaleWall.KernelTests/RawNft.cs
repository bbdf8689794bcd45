using System.Text.Json;
using System.Text.Json.Nodes;

namespace WhaleWall.KernelTests;

/// <summary>JSON shapes that libnftables 1.0.6 accepts (checked by these tests).</summary>
internal static class RawNft
{
    public static string Batch(params JsonNode[] commands) =>
        new JsonObject { ["nftables"] = new JsonArray(commands) }.ToJsonString();

    public static JsonNode AddTable(string table) =>
        Cmd("add", "table", new JsonObject { ["family"] = "inet", ["name"] = table });

    public static JsonNode DeleteTable(string table) =>
        Cmd("delete", "table", new JsonObject { ["family"] = "inet", ["name"] = table });

    public static JsonNode ListTable(string table) =>
        Cmd("list", "table", new JsonObject { ["family"] = "inet", ["name"] = table });

    public static JsonNode ListSet(string table, string set) =>
        Cmd("list", "set", new JsonObject { ["family"] = "inet", ["table"] = table, ["name"] = set });

    /// <summary>A base chain: {"type":"filter","hook":"forward","prio":-10,"policy":"accept"}.</summary>
    public static JsonNode AddBaseChain(string table, string chain, string hook, int prio = -10, string policy = "accept") =>
        Cmd("add", "chain", new JsonObject
        {
            ["family"] = "inet", ["table"] = table, ["name"] = chain,
            ["type"] = "filter", ["hook"] = hook, ["prio"] = prio, ["policy"] = policy,
        });

    /// <summary>A concatenated interval set with per-element counters:
    /// {"type":[...],"flags":["interval"],"stmt":[{"counter":null}]}.</summary>
    public static JsonNode AddConcatSet(string table, string set, string[] types, params string[] flags) =>
        Cmd("add", "set", new JsonObject
        {
            ["family"] = "inet", ["table"] = table, ["name"] = set,
            ["type"] = new JsonArray(types.Select(t => (JsonNode)t!).ToArray()),
            ["flags"] = new JsonArray(flags.Select(f => (JsonNode)f!).ToArray()),
            ["stmt"] = new JsonArray(new JsonObject { ["counter"] = null }),
        });

    public static JsonNode AddElements(string table, string set, params JsonNode[] elems) =>
        Cmd("add", "element", new JsonObject
        {
            ["family"] = "inet", ["table"] = table, ["name"] = set, ["elem"] = new JsonArray(elems),
        });

    public static JsonNode DeleteElements(string table, string set, params JsonNode[] elems) =>
        Cmd("delete", "element", new JsonObject
        {
            ["family"] = "inet", ["table"] = table, ["name"] = set, ["elem"] = new JsonArray(elems),
        });

    public static JsonNode AddRule(string table, string chain, params JsonNode[] expr) =>
        Cmd("add", "rule", new JsonObject
        {
            ["family"] = "inet", ["table"] = table, ["chain"] = chain, ["expr"] = new JsonArray(expr),
        });

    public static JsonNode Concat(params JsonNode[] parts) => new JsonObject { ["concat"] = new JsonArray(parts) };
    public static JsonNode Range(JsonNode lo, JsonNode hi) => new JsonObject { ["range"] = new JsonArray(lo, hi) };
    public static JsonNode Prefix(string addr, int len) =>
        new JsonObject { ["prefix"] = new JsonObject { ["addr"] = addr, ["len"] = len } };
    public static JsonNode Payload(string protocol, string field) =>
        new JsonObject { ["payload"] = new JsonObject { ["protocol"] = protocol, ["field"] = field } };
    public static JsonNode Meta(string key) => new JsonObject { ["meta"] = new JsonObject { ["key"] = key } };
    public static JsonNode Match(string op, JsonNode left, JsonNode right) =>
        new JsonObject { ["match"] = new JsonObject { ["op"] = op, ["left"] = left, ["right"] = right } };
    public static JsonNode Verdict(string verdict) => new JsonObject { [verdict] = null };
    public static JsonNode Counter() => new JsonObject { ["counter"] = null };

    /// <summary>`ct state established,related accept`.</summary>
    public static JsonNode[] CtEstablishedAccept() =>
    [
        Match("in", new JsonObject { ["ct"] = new JsonObject { ["key"] = "state" } }, new JsonArray("established", "related")),
        Verdict("accept"),
    ];

    /// <summary>`ip saddr . ip daddr . meta l4proto . th dport @set` (family "ip" or "ip6").</summary>
    public static JsonNode LookupSaddrDaddrProtoDport(string family, string set) =>
        Match("==", Concat(Payload(family, "saddr"), Payload(family, "daddr"), Meta("l4proto"), Payload("th", "dport")), "@" + set);

    private static JsonNode Cmd(string verb, string kind, JsonObject body) =>
        new JsonObject { [verb] = new JsonObject { [kind] = body } };

    /// <summary>The objects of a libnftables JSON listing, without the metainfo entry.</summary>
    public static IEnumerable<JsonObject> Objects(string listing)
    {
        var root = JsonNode.Parse(listing) ?? throw new JsonException("empty listing");
        foreach (var item in root["nftables"]!.AsArray())
            if (item is JsonObject o && !o.ContainsKey("metainfo")) yield return o;
    }
}
