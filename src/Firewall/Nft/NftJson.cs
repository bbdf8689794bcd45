using System.Text.Json;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Nft;

/// <summary>Renders WhaleWall's table and element changes as libnftables JSON commands.
/// Pure: text in, text out. Output is deterministic (elements sorted), so it can be
/// golden-tested.</summary>
public static class NftJson
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>One transaction that replaces the whole table (or creates it): there is never a
    /// moment without rules, because the kernel commits the batch atomically.
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
        foreach (var chain in NftLayout.FixedChains.Concat(NftLayout.ProxyChains)) commands.Add(Command("flush", "chain", ChainObject(table, chain)));
        foreach (var set in NftSets.All)
            commands.Add(Command("flush", set.VerdictMap ? "map" : "set", new JsonObject { ["family"] = "inet", ["table"] = table, ["name"] = set.Name }));
        foreach (var name in existing) commands.Add(Command("flush", "chain", ChainObject(table, name)));
        foreach (var name in existing.Except(wanted.Select(c => c.Name)))
            commands.Add(Command("delete", "chain", ChainObject(table, name)));
        foreach (var chain in wanted) AddChain(commands, table, chain);
        foreach (var command in NftLayout.Rules(table, logDrops)) commands.Add(command);
        foreach (var group in elements.Distinct().Order().GroupBy(e => e.PhysicalSet))
            commands.Add(Command("add", "element", ElementsObject(table, group.Key, group, now)));
        Append(commands, bridge);
        return Render(commands, indented);
    }

    /// <summary>Moves <paramref name="more"/> (another table's commands, e.g. the bridge table's)
    /// to the end of the batch: one transaction for both.</summary>
    private static void Append(JsonArray commands, JsonArray? more)
    {
        if (more is null) return;
        foreach (var command in more.ToList())
        {
            more.Remove(command);
            commands.Add(command);
        }
    }

    /// <summary>One transaction: new chains, element deletes, element adds, then chains no
    /// longer referenced.</summary>
    public static string Changes(string table, IEnumerable<Element> deletes, IEnumerable<Element> adds,
        IEnumerable<RuleChain>? chainDeletes = null, IEnumerable<RuleChain>? chainAdds = null, DateTimeOffset? now = null,
        JsonArray? bridge = null)
    {
        var commands = new JsonArray();
        foreach (var chain in (chainAdds ?? []).Order()) AddChain(commands, table, chain);
        foreach (var group in deletes.Order().GroupBy(e => e.PhysicalSet))
            commands.Add(Command("delete", "element", ElementsObject(table, group.Key, group)));
        foreach (var group in adds.Order().GroupBy(e => e.PhysicalSet))
            commands.Add(Command("add", "element", ElementsObject(table, group.Key, group, now)));
        foreach (var chain in (chainDeletes ?? []).Order())
        {
            commands.Add(Command("flush", "chain", ChainObject(table, chain.Name)));
            commands.Add(Command("delete", "chain", ChainObject(table, chain.Name)));
        }
        Append(commands, bridge);
        return Render(commands, false);
    }

    private static void AddChain(JsonArray commands, string table, RuleChain chain)
    {
        commands.Add(Command("add", "chain", ChainObject(table, chain.Name)));
        foreach (var rule in NftLayout.ChainRules(table, chain)) commands.Add(rule);
    }

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
        foreach (var group in elements.Distinct().Order().GroupBy(e => e.PhysicalSet))
            commands.Add(Command("add", "element", ElementsObject(table, group.Key, group)));
        Append(commands, bridge);
        return Render(commands, false);
    }

    public static string DeleteTable(string table) =>
        Render([Command("add", "table", TableObject(table)), Command("delete", "table", TableObject(table))], false);

    public static string ListSet(string table, string set) =>
        Render([Command("list", "set", new JsonObject { ["family"] = "inet", ["table"] = table, ["name"] = set })], false);

    public static string ListTable(string table) => Render([Command("list", "table", TableObject(table))], false);

    internal static JsonObject Command(string verb, string kind, JsonObject body) =>
        new() { [verb] = new JsonObject { [kind] = body } };

    internal static JsonObject TableObject(string table) => new() { ["family"] = "inet", ["name"] = table };

    private static JsonObject ElementsObject(string table, string set, IEnumerable<Element> elements, DateTimeOffset? now = null) => new()
    {
        ["family"] = "inet",
        ["table"] = table,
        ["name"] = set,
        ["elem"] = new JsonArray(elements.Select(e => WithTimeout(e, now)).ToArray()),
    };

    /// <summary>An element with an expiry is added with the seconds it has left (at least 1), as
    /// its timeout and as its expiry: an `add` of an element the kernel still holds, with the same
    /// timeout and no expiry, is accepted and changes nothing (kernel 6.18), so a renewal the
    /// writer sends without a delete (too close to the old expiry to delete safely) or an address
    /// learned again before the kernel let it go would die at its old expiry. With the expiry the
    /// kernel restarts the element's clock.</summary>
    private static JsonNode WithTimeout(Element element, DateTimeOffset? now)
    {
        var value = ElementValue(element);
        if (element.Expires is not { } expires || now is not { } at) return value;
        var seconds = Math.Max(1, (int)Math.Ceiling((expires - at).TotalSeconds));
        return new JsonObject { ["elem"] = new JsonObject { ["val"] = value, ["timeout"] = seconds, ["expires"] = seconds } };
    }

    public static JsonNode ElementValue(Element element)
    {
        var fields = element.PhysicalFields;
        var key = fields.Length == 1
            ? FieldValue(fields[0])
            : new JsonObject { ["concat"] = new JsonArray(fields.Select(FieldValue).ToArray()) };
        return element.Target is { } target
            ? new JsonArray(key, new JsonObject { ["goto"] = new JsonObject { ["target"] = target } })
            : key;
    }

    private static JsonNode FieldValue(Field field)
    {
        switch (field.Kind)
        {
            case FieldKind.Ipv4:
            case FieldKind.Ipv6:
                var family = field.Kind == FieldKind.Ipv4 ? IpFamily.V4 : IpFamily.V6;
                var lo = Addresses.Format(family, field.Lo);
                if (field.Lo == field.Hi) return lo;
                if (PrefixLength(family, field) is { } len)
                    return new JsonObject { ["prefix"] = new JsonObject { ["addr"] = lo, ["len"] = len } };
                return new JsonObject { ["range"] = new JsonArray(lo, Addresses.Format(family, field.Hi)) };
            case FieldKind.Mark:
                return JsonValue.Create((uint)field.Lo);
            default:
                return field.Lo == field.Hi
                    ? JsonValue.Create((int)field.Lo)
                    : new JsonObject { ["range"] = new JsonArray((int)field.Lo, (int)field.Hi) };
        }
    }

    /// <summary>The prefix length when the interval is exactly one CIDR block.</summary>
    private static int? PrefixLength(IpFamily family, Field field)
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
