using System.Text.Json.Nodes;

namespace WhaleWall.Firewall.Binding;

/// <summary>An element of one of the bridge table's sets. Equal elements have equal
/// <see cref="Key"/> (its identity, as for the inet table's elements: the writer can count
/// references on it; a guard's lease is not part of it).</summary>
public sealed class BridgeElement : IEquatable<BridgeElement>, IComparable<BridgeElement>
{
    internal BridgeElement(string set, string key, Func<JsonNode> value, int? timeoutSeconds = null)
    {
        Set = set;
        Key = set + " " + key;
        _value = value;
        TimeoutSeconds = timeoutSeconds;
    }

    private readonly Func<JsonNode> _value;

    public string Set { get; }
    public string Key { get; }

    /// <summary>Seconds until the kernel drops the element by itself (a lenient guard), or null.</summary>
    public int? TimeoutSeconds { get; }

    /// <summary>The element as libnftables JSON (a fresh node on every call).</summary>
    public JsonNode Json()
    {
        var value = _value();
        return TimeoutSeconds is { } t ? new JsonObject { ["elem"] = new JsonObject { ["val"] = value, ["timeout"] = t } } : value;
    }

    public bool Equals(BridgeElement? other) => other is not null && Key == other.Key;
    public override bool Equals(object? obj) => Equals(obj as BridgeElement);
    public override int GetHashCode() => Key.GetHashCode(StringComparison.Ordinal);
    public int CompareTo(BridgeElement? other) => string.CompareOrdinal(Key, other?.Key);
    public override string ToString() => Key;
}
