using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text.Json.Nodes;

namespace WhaleWall.Firewall.Binding;

/// <summary>
/// WhaleWall's bridge-family table (docs/binding.md): a constant handful of rules that look up
/// hash sets keyed by port (the host-side veth's ifindex, <c>meta iif</c>), MAC and address. It
/// binds each managed container to its port (only its own MAC and addresses leave it; router
/// advertisements, redirects and foreign neighbour advertisements never do), refuses a managed
/// address or MAC from any other port, and makes unclassified source addresses wait on networks
/// that hold a managed container. Pure: renders libnftables JSON.
/// <para>The IPv6 sets are keyed by raw payload (<c>@nh,64,128</c> is the source address,
/// <c>@th,64,128</c> a neighbour discovery target: libnftables 1.0.6 has no <c>icmpv6 taddr</c>),
/// so one set serves both lookups; they need a <c>typeof</c> declaration, which its JSON parser
/// cannot read: run <see cref="RawSetDeclarations"/> (nft syntax) once before the JSON start-up
/// transaction (declaring empty sets ahead is harmless). Listings show their addresses as
/// 128-bit numbers.</para>
/// <para>Rules that look at ARP or ICMPv6 from ports that are not bound name their protocol with
/// <c>meta protocol</c>: nft's implicit dependency reads the link-layer ether type, which a
/// VLAN-tagged frame (even VLAN 0, which receivers treat as untagged) would not match.</para>
/// </summary>
public static class BridgeLayout
{
    public const string Family = "bridge";

    /// <summary>Before the bridge filter priority (-200): ahead of ebtables-nft and of
    /// br_netfilter (priority 0), which hands bridged IP packets to the inet hooks.</summary>
    public const int Priority = -210;

    public const string Ports = "ports";        // iface_index: managed ports
    public const string Port4 = "port4";        // iface_index . ether_addr . ipv4_addr: what a port may send (managed and known ports)
    public const string Port6 = "port6";        // typeof iif . ether saddr . @nh,64,128: the same for IPv6 (managed: global and link-local)
    public const string OwnedMac = "owned_mac"; // ether_addr: a managed container's MAC, from no other port
    public const string Owned4 = "owned4";      // ipv4_addr: its IPv4 address, from no other port
    public const string Owned6 = "owned6";      // typeof @nh,64,128: its IPv6 addresses (global and link-local)
    public const string Guard4 = "guard4";      // ipv4_addr interval (timeout): networks that hold a managed container
    public const string Guard6 = "guard6";      // ipv6_addr interval (timeout)

    public static readonly string[] Chains = ["prerouting", "forward", "output", "from_port", "from_port4", "from_port6", "from_port_arp", "to_port"];

    private sealed record SetShape(string Name, string[] Type, bool Interval = false);

    private static readonly SetShape[] TypedSets =
    [
        new(Ports, ["iface_index"]),
        new(Port4, ["iface_index", "ether_addr", "ipv4_addr"]),
        new(OwnedMac, ["ether_addr"]),
        new(Owned4, ["ipv4_addr"]),
        new(Guard4, ["ipv4_addr"], Interval: true),
        new(Guard6, ["ipv6_addr"], Interval: true),
    ];

    public static readonly string[] Sets = [.. TypedSets.Select(s => s.Name), Port6, Owned6];

    /// <summary>ICMPv6 a managed container may send from its link-local address (and with its
    /// addresses as the subject): neighbour and router solicitation, neighbour advertisement
    /// (target checked), multicast listener reports and done.</summary>
    private static readonly string[] NeighbourTypesOut =
        ["nd-router-solicit", "nd-neighbor-solicit", "nd-neighbor-advert", "mld-listener-report", "mld-listener-done", "mld2-listener-report"];

    /// <summary>... and receive (multicast listener queries too).</summary>
    private static readonly string[] NeighbourTypesIn = [.. NeighbourTypesOut, "mld-listener-query"];

    /// <summary>Never from a managed container, never to one: they re-route its neighbours.</summary>
    private static readonly string[] RouterTypes = ["nd-router-advert", "nd-redirect", "router-renumbering"];

    /// <summary>nft syntax: the table and the two raw-keyed sets (no-ops when they exist).</summary>
    public static string RawSetDeclarations(string table) =>
        $"add table bridge {table}\n" +
        $"add set bridge {table} {Port6} {{ typeof iif . ether saddr . @nh,64,128; }}\n" +
        $"add set bridge {table} {Owned6} {{ typeof @nh,64,128; }}\n";

    /// <summary>One transaction that (re)builds the table: declarations (no-ops when they
    /// exist), every chain and set flushed, the rules, the elements. Run
    /// <see cref="RawSetDeclarations"/> first.</summary>
    public static string FullTable(string table, IEnumerable<BridgeElement> elements) => Render(FullTableCommands(table, elements));

    /// <summary>The commands of <see cref="FullTable"/>, to put in the same batch as the inet
    /// table's start-up (one transaction for both tables).</summary>
    public static JsonArray FullTableCommands(string table, IEnumerable<BridgeElement> elements)
    {
        var commands = new JsonArray { Command("add", "table", new JsonObject { ["family"] = Family, ["name"] = table }) };
        foreach (var set in TypedSets) commands.Add(Command("add", "set", SetObject(table, set)));
        foreach (var chain in Chains) commands.Add(Command("add", "chain", ChainObject(table, chain)));
        foreach (var chain in Chains) commands.Add(Command("flush", "chain", new JsonObject { ["family"] = Family, ["table"] = table, ["name"] = chain }));
        foreach (var set in Sets) commands.Add(Command("flush", "set", new JsonObject { ["family"] = Family, ["table"] = table, ["name"] = set }));
        foreach (var rule in Rules(table)) commands.Add(rule);
        AddElements(commands, "add", table, elements);
        return commands;
    }

    /// <summary>One transaction: element deletes, then adds (both may be empty).</summary>
    public static string Changes(string table, IEnumerable<BridgeElement> deletes, IEnumerable<BridgeElement> adds) =>
        Render(ChangeCommands(table, deletes, adds));

    /// <summary>The commands of <see cref="Changes"/>, to put in the same batch as the inet
    /// table's element changes of the same container (one transaction for both tables).</summary>
    public static JsonArray ChangeCommands(string table, IEnumerable<BridgeElement> deletes, IEnumerable<BridgeElement> adds)
    {
        var commands = new JsonArray();
        AddElements(commands, "delete", table, deletes);
        AddElements(commands, "add", table, adds);
        return commands;
    }

    public static string DeleteTable(string table) => Render(
    [
        Command("add", "table", new JsonObject { ["family"] = Family, ["name"] = table }),
        Command("delete", "table", new JsonObject { ["family"] = Family, ["name"] = table }),
    ]);

    // ------------------------------------------------------------------ elements

    /// <summary>Everything a managed container's binding puts in the table: what it owns (its
    /// MAC and addresses, refused from any other port) and, once its port is known, what that
    /// port may send (8 elements with IPv4 and IPv6, 6 with IPv4 only: its link-local counts).</summary>
    public static IEnumerable<BridgeElement> Elements(PortBinding b)
    {
        var mac = Mac(b.Mac);
        yield return new(OwnedMac, mac, () => JsonValue.Create(mac)!);
        if (b.IPv4 is { } v4)
        {
            var a = Address(v4, AddressFamily.InterNetwork);
            yield return new(Owned4, a, () => JsonValue.Create(a)!);
        }
        foreach (var address in b.IPv6Addresses)
        {
            var a = Address(address, AddressFamily.InterNetworkV6);
            var raw = Raw128(address);
            yield return new(Owned6, a, () => JsonValue.Create(raw)!);
        }
        if (b.Port is not { } port) yield break;

        yield return new(Ports, $"{port}", () => JsonValue.Create(port));
        foreach (var e in PortElements(port, mac, b.IPv4, b.IPv6Addresses)) yield return e;
    }

    /// <summary>A knowingly unmanaged container's addresses, classified on its own port.</summary>
    public static IEnumerable<BridgeElement> Elements(KnownPort k) =>
        PortElements(k.Port, Mac(k.Mac), k.IPv4, k.IPv6 is { } v6 ? [v6] : []);

    private static IEnumerable<BridgeElement> PortElements(int port, string mac, IPAddress? ipv4, IEnumerable<IPAddress> ipv6)
    {
        if (ipv4 is { } v4)
        {
            var a = Address(v4, AddressFamily.InterNetwork);
            yield return new(Port4, $"{port} . {mac} . {a}", () => Concat(JsonValue.Create(port), mac, a));
        }
        foreach (var address in ipv6)
        {
            var a = Address(address, AddressFamily.InterNetworkV6);
            var raw = Raw128(address);
            yield return new(Port6, $"{port} . {mac} . {a}", () => Concat(JsonValue.Create(port), mac, raw));
        }
    }

    /// <summary>The guard of a network that holds a managed container.</summary>
    public static BridgeElement Element(GuardedSubnet g)
    {
        var v4 = g.Subnet.BaseAddress.AddressFamily == AddressFamily.InterNetwork;
        var addr = g.Subnet.BaseAddress.ToString();
        var len = g.Subnet.PrefixLength;
        int? timeout = g.Lease is { } lease ? Math.Max(1, (int)Math.Ceiling(lease.TotalSeconds)) : null;
        return new(v4 ? Guard4 : Guard6, $"{addr}/{len}",
            () => new JsonObject { ["prefix"] = new JsonObject { ["addr"] = addr, ["len"] = len } }, timeout);
    }

    // ------------------------------------------------------------------ rules

    /// <summary>The rules: a constant number, whatever the number of containers.</summary>
    public static IEnumerable<JsonObject> Rules(string table)
    {
        JsonObject R(string chain, params JsonObject[] expr) => Rule(table, chain, expr);
        JsonObject Ip6() => Match(Meta("protocol"), "ip6");
        JsonObject Arp() => Match(Meta("protocol"), "arp");

        // --- prerouting: every frame entering a bridge from one of its ports, before the bridge
        // learns its source MAC and before br_netfilter hands it to the inet hooks
        yield return R("prerouting", Match(Meta("iif"), "@" + Ports), Jump("from_port"));
        // not a managed port: nothing of a managed container's
        yield return R("prerouting", Match(P("ether", "saddr"), "@" + OwnedMac), Drop());
        yield return R("prerouting", Match(P("ip", "saddr"), "@" + Owned4), Drop());
        yield return R("prerouting", Ip6(), Match(SourceAddress6(), "@" + Owned6), Drop());
        yield return R("prerouting", Arp(), Match(P("arp", "saddr ether"), "@" + OwnedMac), Drop());
        yield return R("prerouting", Arp(), Match(P("arp", "saddr ip"), "@" + Owned4), Drop());
        yield return R("prerouting", Ip6(), Match(P("icmpv6", "type"), "nd-neighbor-advert"), Match(NdTarget(), "@" + Owned6), Drop());
        // duplicate address detection of a managed address (a neighbour claiming it)
        yield return R("prerouting", Ip6(), Match(P("ip6", "saddr"), "::"), Match(P("icmpv6", "type"), "nd-neighbor-solicit"),
            Match(NdTarget(), "@" + Owned6), Drop());
        // unknown addresses wait: on a guarded network, a source not classified on its port
        yield return R("prerouting", Match(P("ip", "saddr"), "@" + Guard4),
            Match(Concat(Meta("iif"), P("ether", "saddr"), P("ip", "saddr")), "@" + Port4, "!="), Drop());
        yield return R("prerouting", Match(P("ip6", "saddr"), "@" + Guard6),
            Match(Concat(Meta("iif"), P("ether", "saddr"), SourceAddress6()), "@" + Port6, "!="), Drop());
        yield return R("prerouting", Arp(), Match(P("arp", "saddr ip"), "@" + Guard4),
            Match(Concat(Meta("iif"), P("ether", "saddr"), P("arp", "saddr ip")), "@" + Port4, "!="), Drop());

        // --- a managed port, by ether type as the frame carries it: anything but untagged
        // IPv4, ARP and IPv6 (VLAN tags included) is dropped
        yield return R("from_port", new JsonObject
        {
            ["vmap"] = new JsonObject
            {
                ["key"] = P("ether", "type"),
                ["data"] = new JsonObject
                {
                    ["set"] = new JsonArray(
                        new JsonArray("ip", Jump("from_port4")),
                        new JsonArray("arp", Jump("from_port_arp")),
                        new JsonArray("ip6", Jump("from_port6"))),
                },
            },
        });
        yield return R("from_port", Drop());

        // its MAC and its address, together
        yield return R("from_port4", Match(Concat(Meta("iif"), P("ether", "saddr"), P("ip", "saddr")), "@" + Port4), Accept());
        yield return R("from_port4", Drop());

        yield return R("from_port_arp",
            Match(P("arp", "htype"), 1), Match(P("arp", "ptype"), "ip"), Match(P("arp", "hlen"), 6), Match(P("arp", "plen"), 4),
            Match(Concat(Meta("iif"), P("ether", "saddr"), P("arp", "saddr ip")), "@" + Port4),
            Match(Concat(Meta("iif"), P("arp", "saddr ether"), P("arp", "saddr ip")), "@" + Port4), Accept());
        yield return R("from_port_arp", Drop());

        // neighbour advertisements only for its own addresses; no router advertisements,
        // redirects, renumbering or multicast listener queries
        yield return R("from_port6", Match(P("icmpv6", "type"), "nd-neighbor-advert"),
            Match(Concat(Meta("iif"), P("ether", "saddr"), NdTarget()), "@" + Port6, "!="), Drop());
        yield return R("from_port6", Match(P("icmpv6", "type"), Set([.. RouterTypes, "mld-listener-query"])), Drop());
        // duplicate address detection of its own addresses; listener reports before it has an address
        yield return R("from_port6", Match(P("ip6", "saddr"), "::"), Match(P("icmpv6", "type"), "nd-neighbor-solicit"),
            Match(Concat(Meta("iif"), P("ether", "saddr"), NdTarget()), "@" + Port6), Accept());
        yield return R("from_port6", Match(P("ip6", "saddr"), "::"), Match(P("icmpv6", "type"), "mld2-listener-report"), Accept());
        // neighbour discovery from its own link-local or global address
        yield return R("from_port6", Match(P("icmpv6", "type"), Set(NeighbourTypesOut)),
            Match(Concat(Meta("iif"), P("ether", "saddr"), SourceAddress6()), "@" + Port6), Accept());
        // nothing else from or to link-local addresses (its policy cannot name them)
        yield return R("from_port6", Match(P("ip6", "saddr"), Prefix("fe80::", 10)), Drop());
        yield return R("from_port6", Match(P("ip6", "daddr"), Prefix("fe80::", 10)), Drop());
        yield return R("from_port6", Match(Concat(Meta("iif"), P("ether", "saddr"), SourceAddress6()), "@" + Port6), Accept());
        yield return R("from_port6", Drop());

        // --- towards a managed port (bridged from a neighbour, or sent by the host)
        yield return R("forward", Match(Meta("oif"), "@" + Ports), Jump("to_port"));
        yield return R("output", Match(Meta("oif"), "@" + Ports), Jump("to_port"));
        yield return R("to_port", Match(P("ether", "type"), Set(["8021q", "8021ad"])), Drop());
        yield return R("to_port", Match(P("icmpv6", "type"), Set(RouterTypes)), Drop());
        yield return R("to_port", Match(P("icmpv6", "type"), Set(NeighbourTypesIn)), Accept());
        yield return R("to_port", Match(P("ip6", "saddr"), Prefix("fe80::", 10)), Drop());
        yield return R("to_port", Match(P("ip6", "daddr"), Prefix("fe80::", 10)), Drop());
    }

    // ------------------------------------------------------------------ JSON helpers

    private static JsonObject SetObject(string table, SetShape set)
    {
        var body = new JsonObject
        {
            ["family"] = Family,
            ["table"] = table,
            ["name"] = set.Name,
            ["type"] = set.Type.Length == 1 ? set.Type[0] : new JsonArray(set.Type.Select(t => (JsonNode)t!).ToArray()),
        };
        if (set.Interval) body["flags"] = new JsonArray("interval", "timeout");
        return body;
    }

    private static JsonObject ChainObject(string table, string chain)
    {
        var body = new JsonObject { ["family"] = Family, ["table"] = table, ["name"] = chain };
        if (chain is "prerouting" or "forward" or "output")
        {
            body["type"] = "filter";
            body["hook"] = chain;
            body["prio"] = Priority;
            body["policy"] = "accept";
        }
        return body;
    }

    private static void AddElements(JsonArray commands, string verb, string table, IEnumerable<BridgeElement> elements)
    {
        foreach (var group in elements.Distinct().Order().GroupBy(e => e.Set))
            commands.Add(Command(verb, "element", new JsonObject
            {
                ["family"] = Family,
                ["table"] = table,
                ["name"] = group.Key,
                ["elem"] = new JsonArray(group.Select(e => verb == "delete" && e.TimeoutSeconds is not null
                    ? ((JsonObject)e.Json())["elem"]!["val"]!.DeepClone() : e.Json()).ToArray()),
            }));
    }

    private static JsonObject Command(string verb, string kind, JsonObject body) => new() { [verb] = new JsonObject { [kind] = body } };

    private static JsonObject Rule(string table, string chain, JsonObject[] expr) => Command("add", "rule", new JsonObject
    {
        ["family"] = Family,
        ["table"] = table,
        ["chain"] = chain,
        ["expr"] = new JsonArray(expr),
    });

    private static JsonObject Match(JsonNode left, JsonNode right, string op = "==") =>
        new() { ["match"] = new JsonObject { ["op"] = op, ["left"] = left, ["right"] = right } };

    private static JsonObject P(string protocol, string field) =>
        new() { ["payload"] = new JsonObject { ["protocol"] = protocol, ["field"] = field } };

    /// <summary>The target address of a neighbour solicitation/advertisement: 16 bytes at
    /// offset 8 of the ICMPv6 header.</summary>
    private static JsonObject NdTarget() => new() { ["payload"] = new JsonObject { ["base"] = "th", ["offset"] = 64, ["len"] = 128 } };

    /// <summary>The IPv6 source address as raw payload (16 bytes at offset 8 of the network
    /// header), to look it up in the raw-keyed sets. Has no implicit dependency: every rule
    /// using it names the protocol first.</summary>
    private static JsonObject SourceAddress6() => new() { ["payload"] = new JsonObject { ["base"] = "nh", ["offset"] = 64, ["len"] = 128 } };

    private static JsonObject Meta(string key) => new() { ["meta"] = new JsonObject { ["key"] = key } };
    private static JsonObject Concat(params JsonNode[] parts) => new() { ["concat"] = new JsonArray(parts) };
    private static JsonObject Set(IEnumerable<string> items) => new() { ["set"] = new JsonArray(items.Select(i => (JsonNode)i!).ToArray()) };
    private static JsonObject Prefix(string addr, int len) => new() { ["prefix"] = new JsonObject { ["addr"] = addr, ["len"] = len } };
    private static JsonObject Jump(string chain) => new() { ["jump"] = new JsonObject { ["target"] = chain } };
    private static JsonObject Drop() => new() { ["drop"] = null };
    private static JsonObject Accept() => new() { ["accept"] = null };

    private static string Render(JsonArray commands) => new JsonObject { ["nftables"] = commands }.ToJsonString();

    /// <summary>aa:bb:cc:dd:ee:ff, lower case.</summary>
    public static string Mac(PhysicalAddress mac) =>
        string.Join(':', mac.GetAddressBytes().Select(b => b.ToString("x2")));

    private static string Address(IPAddress address, AddressFamily family)
    {
        if (address.AddressFamily != family) throw new ArgumentException($"{address} is not {family}");
        // canonical text, no zone id: never anything libnftables could take for a host name
        return new IPAddress(address.GetAddressBytes()).ToString();
    }

    /// <summary>An IPv6 address as the 128-bit integer a raw-payload set holds (0x + 32 hex digits).</summary>
    private static string Raw128(IPAddress address) => "0x" + Convert.ToHexString(address.GetAddressBytes()).ToLowerInvariant();
}
