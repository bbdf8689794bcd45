using System.Text.Json.Nodes;

namespace WhaleWall.Actors.State;

/// <summary>Older journal shapes brought to the current one, as JSON, before the one reader of
/// <see cref="FactsSchema"/> reads them. v1 facts lacked the attachments' prefix lengths, driver
/// and MAC and the container's DNS servers, image and network mode: they get what replaying a v1
/// entry always gave (the records' defaults), and the next look at Docker records them in full.</summary>
public static class StateUpcasters
{
    public static JsonObject FactsV1ToV2(JsonObject v1)
    {
        var facts = v1.DeepClone().AsObject();
        foreach (var network in facts["networks"]!.AsArray())
        {
            var n = network!.AsObject();
            n.TryAdd("ipv4_prefix", 32);
            n.TryAdd("ipv6_prefix", 128);
            n.TryAdd("driver", "bridge");
            n.TryAdd("mac", null);
        }
        facts.TryAdd("dns_servers", new JsonArray());
        facts.TryAdd("image", null);
        facts.TryAdd("network_mode", null);
        return facts;
    }

    /// <summary>v2 facts had no bridge names and no learned ports: found again at the next look.</summary>
    public static JsonObject FactsV2ToV3(JsonObject v2)
    {
        var facts = v2.DeepClone().AsObject();
        foreach (var network in facts["networks"]!.AsArray())
        {
            var n = network!.AsObject();
            n.TryAdd("bridge", null);
            n.TryAdd("port", null);
        }
        return facts;
    }

    /// <summary><c>container-recorded.v2</c> -> <c>.v3</c>.</summary>
    public static JsonObject RecordedV2ToV3(JsonObject v2)
    {
        var e = v2.DeepClone().AsObject();
        e["facts"] = FactsV2ToV3(v2["facts"]!.AsObject());
        return e;
    }

    /// <summary><c>containers-snapshot.v2</c> -> <c>.v3</c>.</summary>
    public static JsonObject SnapshotV2ToV3(JsonObject v2)
    {
        var s = v2.DeepClone().AsObject();
        foreach (var c in s["containers"]!.AsArray())
            c!["facts"] = FactsV2ToV3(c["facts"]!.AsObject());
        return s;
    }

    /// <summary><c>container-recorded.v1</c> -> <c>.v2</c>.</summary>
    public static JsonObject RecordedV1ToV2(JsonObject v1)
    {
        var e = v1.DeepClone().AsObject();
        e["facts"] = FactsV1ToV2(v1["facts"]!.AsObject());
        return e;
    }

    /// <summary><c>containers-snapshot.v1</c> -> <c>.v2</c> (no networks were journalled).</summary>
    public static JsonObject SnapshotV1ToV2(JsonObject v1)
    {
        var s = v1.DeepClone().AsObject();
        foreach (var c in s["containers"]!.AsArray())
            c!["facts"] = FactsV1ToV2(c["facts"]!.AsObject());
        s.TryAdd("networks", new JsonArray());
        return s;
    }
}
