using System.Text.Json.Nodes;

namespace WhaleWall.Firewall.Nft;

/// <summary>
/// The DNS proxy's part of WhaleWall's table (docs/dns-proxy.md), constant like the rest:
/// <code>
/// set dnsproxy4 { type ipv4_addr }            # containers whose DNS goes to the proxy
/// set dnsproxy6 { type ipv6_addr }
/// chain dns_redirect {                        # before Docker's DNAT (dstnat)
///   type nat hook prerouting priority dstnat - 10; policy accept;
///   ip saddr @dnsproxy4 meta l4proto { tcp, udp } th dport 53 redirect to :PORT
///   ip6 saddr @dnsproxy6 meta l4proto { tcp, udp } th dport 53 redirect to :PORT
/// }
/// chain dns_proxy_in {                        # the only way to the proxy's port
///   ip saddr @dnsproxy4 meter dnsproxy_rate4 { ip saddr limit rate over 500/second burst 1000 packets } drop
///   ip saddr @dnsproxy4 meta l4proto tcp ct state new meter dnsproxy_conn4 { ip saddr ct count over 32 } drop
///   (the same two for IPv6, meters dnsproxy_rate6 and dnsproxy_conn6)
///   ip saddr @dnsproxy4 meta l4proto udp ct status dnat ct original proto-dst 53 accept
///   ip saddr @dnsproxy4 meta l4proto tcp ct status dnat ct original proto-dst 53 accept
///   ip6 saddr @dnsproxy6 ... (the same twice)
///   drop
/// }
/// chain input { meta l4proto { tcp, udp } th dport PORT jump dns_proxy_in   # FIRST rule
///               ... }
/// </code>
/// Every TCP or UDP packet from a proxied container to port 53 of ANY address is redirected
/// to the proxy on the host (the address of the interface it came in on), so nothing leaves
/// such a container on port 53. The proxy's port accepts only connections that were
/// redirected from port 53 of a proxied container: nothing from outside, from other
/// containers or from the host itself reaches it directly.
/// <para>The kernel bounds what one container can make the proxy do before the proxy's own
/// per-container query rate applies (which needs a parsed query): at most
/// <see cref="MaxTcpConnections"/> open TCP connections and <see cref="PacketsPerSecond"/>
/// packets a second (burst <see cref="PacketBurst"/>) per container address; beyond that its
/// DNS packets are dropped. A flood or a pile of idle TCP connections from one container
/// cannot exhaust the daemon's CPU or file descriptors (which the firewall needs).</para>
/// </summary>
public static class DnsProxyLayout
{
    public const string Set4 = "dnsproxy4";
    public const string Set6 = "dnsproxy6";
    public const string RedirectChain = "dns_redirect";
    public const string GuardChain = "dns_proxy_in";

    public const string Connections4 = "dnsproxy_conn4";
    public const string Connections6 = "dnsproxy_conn6";
    public const string Rate4 = "dnsproxy_rate4";
    public const string Rate6 = "dnsproxy_rate6";
    public const int MaxTcpConnections = 32;
    public const int PacketsPerSecond = 500;
    public const int PacketBurst = 1000;

    /// <summary><c>dstnat - 10</c>: before Docker's own DNAT at <c>dstnat</c>.</summary>
    public const int NatPriority = -110;

    public static IEnumerable<JsonObject> Declarations(string table)
    {
        yield return NftJson.Command("add", "set", new JsonObject { ["family"] = "inet", ["table"] = table, ["name"] = Set4, ["type"] = "ipv4_addr" });
        yield return NftJson.Command("add", "set", new JsonObject { ["family"] = "inet", ["table"] = table, ["name"] = Set6, ["type"] = "ipv6_addr" });
        foreach (var chain in ChainDeclarations(table)) yield return chain;
    }

    /// <summary>The two chains alone (the sets are among <see cref="NftSets.All"/> in WhaleWall's table).</summary>
    public static IEnumerable<JsonObject> ChainDeclarations(string table)
    {
        yield return NftJson.Command("add", "chain", new JsonObject
        {
            ["family"] = "inet", ["table"] = table, ["name"] = RedirectChain,
            ["type"] = "nat", ["hook"] = "prerouting", ["prio"] = NatPriority, ["policy"] = "accept",
        });
        yield return NftJson.Command("add", "chain", new JsonObject { ["family"] = "inet", ["table"] = table, ["name"] = GuardChain });
    }

    /// <summary>The rules of the two chains (flush them first when refilling the table).</summary>
    public static IEnumerable<JsonObject> Rules(string table, int port)
    {
        foreach (var (ip, set) in new[] { ("ip", Set4), ("ip6", Set6) })
            yield return Rule(table, RedirectChain,
                Match(Payload(ip, "saddr"), "@" + set),
                Match(Meta("l4proto"), new JsonObject { ["set"] = new JsonArray("tcp", "udp") }),
                Match(Payload("th", "dport"), 53),
                new JsonObject { ["redirect"] = new JsonObject { ["port"] = port } });
        foreach (var (ip, set, rate, connections) in new[] { ("ip", Set4, Rate4, Connections4), ("ip6", Set6, Rate6, Connections6) })
        {
            yield return Rule(table, GuardChain,
                Match(Payload(ip, "saddr"), "@" + set),
                Meter(rate, Payload(ip, "saddr"), new JsonObject
                {
                    ["limit"] = new JsonObject { ["rate"] = PacketsPerSecond, ["per"] = "second", ["burst"] = PacketBurst, ["inv"] = true },
                }),
                new JsonObject { ["drop"] = null });
            yield return Rule(table, GuardChain,
                Match(Payload(ip, "saddr"), "@" + set),
                Match(Meta("l4proto"), "tcp"),
                new JsonObject { ["match"] = new JsonObject { ["op"] = "in", ["left"] = Ct("state"), ["right"] = "new" } },
                Meter(connections, Payload(ip, "saddr"), new JsonObject
                {
                    ["ct count"] = new JsonObject { ["val"] = MaxTcpConnections, ["inv"] = true },
                }),
                new JsonObject { ["drop"] = null });
        }
        foreach (var (ip, set) in new[] { ("ip", Set4), ("ip6", Set6) })
            foreach (var proto in new[] { "udp", "tcp" })
                yield return Rule(table, GuardChain,
                    Match(Payload(ip, "saddr"), "@" + set),
                    Match(Meta("l4proto"), proto),
                    new JsonObject { ["match"] = new JsonObject { ["op"] = "in", ["left"] = Ct("status"), ["right"] = "dnat" } },
                    Match(new JsonObject { ["ct"] = new JsonObject { ["key"] = "proto-dst", ["dir"] = "original" } }, 53),
                    new JsonObject { ["accept"] = null });
        yield return Rule(table, GuardChain, new JsonObject { ["drop"] = null });
    }

    /// <summary>The rule that must come first in WhaleWall's <c>input</c> chain (before
    /// <c>ip saddr @managed4 jump egress</c>, which would drop the redirected queries).</summary>
    public static JsonObject InputRule(string table, int port, string command = "add") => NftJson.Command(command, "rule", new JsonObject
    {
        ["family"] = "inet",
        ["table"] = table,
        ["chain"] = "input",
        ["expr"] = new JsonArray(
            Match(Meta("l4proto"), new JsonObject { ["set"] = new JsonArray("tcp", "udp") }),
            Match(Payload("th", "dport"), port),
            new JsonObject { ["jump"] = new JsonObject { ["target"] = GuardChain } }),
    });

    /// <summary>A proxied container's element: its address in <c>dnsproxy4</c>/<c>dnsproxy6</c>
    /// (the container actor adds it with the container's <c>managed*</c> element when its
    /// policy is valid and the proxy is on; a drop-all container is not proxied).</summary>
    public static string SetFor(System.Net.IPAddress address) =>
        address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? Set4 : Set6;

    /// <summary>A batch of commands as libnftables JSON.</summary>
    public static string Render(IEnumerable<JsonObject> commands) =>
        new JsonObject { ["nftables"] = new JsonArray(commands.ToArray<JsonNode>()) }.ToJsonString();

    private static JsonObject Rule(string table, string chain, params JsonObject[] expr) => NftJson.Command("add", "rule", new JsonObject
    {
        ["family"] = "inet",
        ["table"] = table,
        ["chain"] = chain,
        ["expr"] = new JsonArray(expr),
    });

    /// <summary><c>meter NAME { KEY STATEMENT }</c>: a per-key statement. A meter rather than
    /// <c>add @set</c>: its set is declared by the rule itself, with the dynamic flag that the
    /// JSON parser of libnftables 1.0.6 cannot spell, so re-adding the table at start-up works.</summary>
    private static JsonObject Meter(string name, JsonObject key, JsonObject statement) => new()
    {
        ["meter"] = new JsonObject { ["name"] = name, ["key"] = key, ["stmt"] = statement },
    };

    private static JsonObject Match(JsonNode left, JsonNode right) =>
        new() { ["match"] = new JsonObject { ["op"] = "==", ["left"] = left, ["right"] = right } };

    private static JsonObject Payload(string protocol, string field) =>
        new() { ["payload"] = new JsonObject { ["protocol"] = protocol, ["field"] = field } };

    private static JsonObject Meta(string key) => new() { ["meta"] = new JsonObject { ["key"] = key } };

    private static JsonObject Ct(string key) => new() { ["ct"] = new JsonObject { ["key"] = key } };
}
