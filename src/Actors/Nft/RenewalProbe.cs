using System.Text.Json.Nodes;
using WhaleWall.Firewall.Nft;

namespace WhaleWall.Actors.Nft;

/// <summary>Whether this kernel restarts the clock of a timed element that an <c>add element</c>
/// with <c>timeout</c> and <c>expires</c> finds still present (6.18 does; older kernels may keep
/// the old expiry). Where it does, a DNS renewal is one add, which is cheap; elsewhere it must be
/// delete + add in one batch, and a delete in an interval set costs milliseconds. Asked once at
/// start-up in a throw-away table of WhaleWall's own (<c>TABLE_renewprobe</c>), shaped like the
/// DNS sets (a concatenation with intervals and timeouts).</summary>
public static class RenewalProbe
{
    public static bool AddRenews(INftables nft, string table)
    {
        var probe = table + "_renewprobe";
        JsonObject TableObject() => new() { ["family"] = "inet", ["name"] = probe };
        JsonObject Element(int expires) => Cmd("add", "element", new JsonObject
        {
            ["family"] = "inet", ["table"] = probe, ["name"] = "s",
            ["elem"] = new JsonArray(new JsonObject
            {
                ["elem"] = new JsonObject
                {
                    ["val"] = new JsonObject { ["concat"] = new JsonArray("198.18.0.1", 80) },
                    ["timeout"] = 30,
                    ["expires"] = expires,
                },
            }),
        });
        string Batch(params JsonObject[] commands) => new JsonObject { ["nftables"] = new JsonArray(commands) }.ToJsonString();
        try
        {
            var created = nft.Run(Batch(
                Cmd("add", "table", TableObject()),
                Cmd("add", "set", new JsonObject
                {
                    ["family"] = "inet", ["table"] = probe, ["name"] = "s",
                    ["type"] = new JsonArray("ipv4_addr", "inet_service"), ["flags"] = new JsonArray("interval", "timeout"),
                }),
                Element(2)));
            if (!created.Ok || !nft.Run(Batch(Element(30))).Ok) return false;
            var listed = nft.Run(Batch(Cmd("list", "set", new JsonObject { ["family"] = "inet", ["table"] = probe, ["name"] = "s" })));
            return listed.Ok && ExpiresOf(listed.Output) is > 10;
        }
        catch (Exception e) when (e is InvalidOperationException or System.Text.Json.JsonException) { return false; }
        finally
        {
            nft.Run(Batch(Cmd("delete", "table", TableObject())));
        }
    }

    private static JsonObject Cmd(string verb, string kind, JsonObject body) => new() { [verb] = new JsonObject { [kind] = body } };

    /// <summary>The seconds left of the first element of a listed set (null: none found).</summary>
    private static int? ExpiresOf(string listing)
    {
        foreach (var item in JsonNode.Parse(listing)?["nftables"]?.AsArray() ?? [])
            foreach (var element in item?["set"]?["elem"]?.AsArray() ?? [])
                if (element?["elem"]?["expires"] is JsonValue expires) return (int)expires.GetValue<double>();
        return null;
    }
}
