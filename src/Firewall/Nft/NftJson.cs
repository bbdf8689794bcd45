using System.Text.Json;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Nft;

/// <summary>Renders WhaleWall's table and element changes as libnftables JSON commands.
/// Pure: text in, text out. Output is deterministic (elements sorted), so it can be
/// golden-tested.</summary>
public static partial class NftJson
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>One transaction that replaces the whole table (or creates it): there is never a
    /// moment without rules, because the kernel commits the batch atomically. Its cost does not
    /// depend on what the table held (WhaleWallLayoutTests.A_restart_over_a_full_table_*).
    /// <paramref name="existingRuleChains"/> are WhaleWall's r_/q_ chains found in the kernel:
    /// they are emptied, and deleted unless still needed. Chains of the operator's own
    /// (targets of <c>verdict.chain</c>) are left alone.</summary>
    public static string FullTable(string table, IEnumerable<Element> elements, IEnumerable<RuleChain>? chains = null,
        IEnumerable<string>? existingRuleChains = null, bool indented = false, DateTimeOffset? now = null, bool logDrops = false,
        JsonArray? bridge = null)
    {
        var wanted = (chains ?? []).Distinct().Order().ToList();
        var existing = (existingRuleChains ?? []).Distinct().Order(StringComparer.Ordinal).ToList();
        var commands = new JsonArray { Command("add", "table", TableObject(table)) };
        foreach (var command in NftLayout.Declarations(table)) commands.Add(command);
        foreach (var chain in NftLayout.FixedChains.Concat(NftLayout.ShardChains).Concat(NftLayout.ProxyChains))
            commands.Add(Command("flush", "chain", ChainObject(table, chain)));
        // emptied by deleting and declaring again, not by `flush set`: flushing a concatenated
        // interval set deletes its elements one by one, in time that grows with the set (60,000
        // elements: 389 s; delete + add: 0.04 s). Nothing references the sets any more here:
        // their rules went with the chains' flush, their elements' chains are not theirs.
        foreach (var set in NftSets.Declared) commands.Add(DeleteSet(table, set));
        // an earlier layout's sets: added (a no-op where they exist) to be deleted with their elements
        foreach (var command in NftLayout.SetDeclarations(table, NftSets.Retired)) commands.Add(command);
        foreach (var set in NftSets.Retired) commands.Add(DeleteSet(table, set));
        foreach (var command in NftLayout.SetDeclarations(table)) commands.Add(command);
        foreach (var name in existing) commands.Add(Command("flush", "chain", ChainObject(table, name)));
        foreach (var name in existing.Except(wanted.Select(c => c.Name)))
            commands.Add(Command("delete", "chain", ChainObject(table, name)));
        foreach (var chain in wanted) AddChain(commands, table, chain);
        foreach (var command in NftLayout.Rules(table, logDrops)) commands.Add(command);
        var batch = new Batch(commands);
        batch.Elements("add", table, elements.Distinct(), now);
        return batch.Render(bridge, indented);
    }

    /// <summary>One transaction: new chains, element deletes, element adds, then chains no
    /// longer referenced.</summary>
    public static string Changes(string table, IEnumerable<Element> deletes, IEnumerable<Element> adds,
        IEnumerable<RuleChain>? chainDeletes = null, IEnumerable<RuleChain>? chainAdds = null, DateTimeOffset? now = null,
        JsonArray? bridge = null, bool indented = false)
    {
        var chainsFirst = new JsonArray();
        foreach (var chain in (chainAdds ?? []).Order()) AddChain(chainsFirst, table, chain);
        var batch = new Batch(chainsFirst);
        batch.Elements("delete", table, deletes, null);
        batch.Elements("add", table, adds, now);
        var chainsLast = new JsonArray();
        foreach (var chain in (chainDeletes ?? []).Order())
        {
            chainsLast.Add(Command("flush", "chain", ChainObject(table, chain.Name)));
            chainsLast.Add(Command("delete", "chain", ChainObject(table, chain.Name)));
        }
        batch.Then(chainsLast);
        return batch.Render(bridge, indented);
    }

    private static void AddChain(JsonArray commands, string table, RuleChain chain)
    {
        commands.Add(Command("add", "chain", ChainObject(table, chain.Name)));
        foreach (var rule in NftLayout.ChainRules(table, chain)) commands.Add(rule);
    }

    private static JsonObject DeleteSet(string table, NftSets.SetShape set) =>
        Command("delete", set.VerdictMap ? "map" : "set", new JsonObject { ["family"] = "inet", ["table"] = table, ["name"] = set.Name });

    private static JsonObject ChainObject(string table, string name) =>
        new() { ["family"] = "inet", ["table"] = table, ["name"] = name };

    /// <summary>Deletes and rebuilds the table in one transaction, for when the kernel holds an
    /// incompatible (older) layout; the operator's own chains in it are lost.</summary>
    public static string ReplaceTable(string table, IEnumerable<Element> elements, bool logDrops = false, JsonArray? bridge = null)
    {
        var commands = new JsonArray
        {
            Command("add", "table", TableObject(table)),
            Command("delete", "table", TableObject(table)),
            Command("add", "table", TableObject(table)),
        };
        foreach (var command in NftLayout.Declarations(table)) commands.Add(command);
        foreach (var command in NftLayout.Rules(table, logDrops)) commands.Add(command);
        var batch = new Batch(commands);
        batch.Elements("add", table, elements.Distinct(), null);
        return batch.Render(bridge, false);
    }

    public static string DeleteTable(string table) =>
        Render([Command("add", "table", TableObject(table)), Command("delete", "table", TableObject(table))], false);

    public static string ListSet(string table, string set) =>
        Render([Command("list", "set", new JsonObject { ["family"] = "inet", ["table"] = table, ["name"] = set })], false);

    public static string ListTable(string table) => Render([Command("list", "table", TableObject(table))], false);

    internal static JsonObject Command(string verb, string kind, JsonObject body) =>
        new() { [verb] = new JsonObject { [kind] = body } };

    internal static JsonObject TableObject(string table) => new() { ["family"] = "inet", ["name"] = table };

    /// <summary>The prefix length when the interval is exactly one CIDR block.</summary>
    internal static int? PrefixLength(IpFamily family, Field field)
    {
        var size = field.Hi - field.Lo; // block size - 1
        if ((size & (size + 1)) != 0 && size != UInt128.MaxValue) return null; // not 2^k - 1
        if ((field.Lo & size) != 0) return null; // not aligned
        var hostBits = size == UInt128.MaxValue ? 128 : (int)UInt128.Log2(size + 1);
        return Addresses.Bits(family) - hostBits;
    }

    private static string Render(JsonArray commands, bool indented) =>
        new JsonObject { ["nftables"] = commands }.ToJsonString(indented ? Indented : null);
}
