using System.Collections.Immutable;
using System.Net;
using System.Runtime.Serialization;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.State;

/// <summary>How one kind of value is written to the journal, read back and compared. Writing,
/// reading and comparing sit together so they cannot disagree.</summary>
public sealed record Codec<T>(Func<T, JsonNode?> Write, Func<JsonNode?, T> Read, Func<T, T, bool> Same);

/// <summary>One property of a record as the journal holds it: its journal name (never renamed),
/// the record property it stands for (checked against the record by a test) and its codec.</summary>
public interface IJournalField<in TOwner>
{
    string Key { get; }
    string Property { get; }
    JsonNode? Write(TOwner owner);
    bool Same(TOwner a, TOwner b);
}

public sealed class JournalField<TOwner, TValue>(string key, string property, Func<TOwner, TValue> get, Codec<TValue> codec)
    : IJournalField<TOwner>
{
    public string Key => key;
    public string Property => property;
    public JsonNode? Write(TOwner owner) => codec.Write(get(owner));
    public bool Same(TOwner a, TOwner b) => codec.Same(get(a), get(b));

    /// <summary>The field's value in <paramref name="o"/>; a missing key is an error, not a default
    /// (defaults for older shapes are the upcaster's job).</summary>
    public TValue Read(JsonObject o)
    {
        if (!o.TryGetPropertyValue(key, out var node))
            throw new SerializationException($"journal entry lacks \"{key}\"");
        try { return codec.Read(node); }
        catch (Exception e) when (e is InvalidOperationException or FormatException or NullReferenceException or ArgumentException)
        {
            throw new SerializationException($"journal entry has an unreadable \"{key}\": {e.Message}", e);
        }
    }
}

/// <summary>A record as the journal holds it: the list of its fields (written, compared and
/// checked from this one list) and how to build the record from them.</summary>
public sealed class JournalShape<T>(ImmutableArray<IJournalField<T>> fields, Func<JsonObject, T> build) where T : class
{
    public ImmutableArray<IJournalField<T>> Fields => fields;

    public JsonObject Write(T value) => new(fields.Select(f => KeyValuePair.Create(f.Key, f.Write(value))));

    public T Read(JsonObject o) => build(o);

    public bool Same(T? a, T? b)
    {
        if (ReferenceEquals(a, b)) return true;
        if (a is null || b is null) return false;
        foreach (var f in fields)
            if (!f.Same(a, b)) return false;
        return true;
    }

    public Codec<T> AsCodec() => new(v => Write(v), n => Read(n!.AsObject()), (a, b) => Same(a, b));
}

/// <summary>The codecs of the journal's value kinds.</summary>
public static class Codecs
{
    public static readonly Codec<string> Text = new(v => v, n => n!.GetValue<string>(), string.Equals);

    public static readonly Codec<string?> OptionalText = new(v => v, n => n?.GetValue<string>(), string.Equals);

    public static readonly Codec<bool> Bool = new(v => v, n => n!.GetValue<bool>(), (a, b) => a == b);

    public static readonly Codec<int> Int = new(v => v, n => n!.GetValue<int>(), (a, b) => a == b);

    public static readonly Codec<ushort> UShort = new(v => v, n => n!.GetValue<ushort>(), (a, b) => a == b);

    public static readonly Codec<L4Proto> Proto = new(
        v => v.ToString().ToLowerInvariant(),
        n => n!.GetValue<string>() switch
        {
            "tcp" => L4Proto.Tcp,
            "udp" => L4Proto.Udp,
            "icmp" => L4Proto.Icmp,
            "icmpv6" => L4Proto.Icmpv6,
            var other => throw new FormatException($"unknown protocol \"{other}\""),
        },
        (a, b) => a == b);

    /// <summary>A learned bridge port: <c>{"index", "name", "boot"}</c> or null.</summary>
    public static readonly Codec<BoundPort?> OptionalPort = new(
        v => v is null ? null : new JsonObject { ["index"] = v.Index, ["name"] = v.Name, ["boot"] = v.BootId },
        n => n is null ? null : new BoundPort(n["index"]!.GetValue<int>(), n["name"]!.GetValue<string>(), n["boot"]!.GetValue<string>()),
        Equals);

    public static readonly Codec<IPAddress?> OptionalAddress = new(
        v => v?.ToString(),
        n => n is null ? null : ParseAddress(n.GetValue<string>()),
        Equals);

    /// <summary>A list of addresses; a default (unset) array is the empty list.</summary>
    public static readonly Codec<ImmutableArray<IPAddress>> AddressList = new(
        v => new JsonArray([.. (v.IsDefault ? [] : v).Select(a => (JsonNode)a.ToString())]),
        n => [.. n!.AsArray().Select(a => ParseAddress(a!.GetValue<string>()))],
        (a, b) => (a.IsDefault ? [] : a).SequenceEqual(b.IsDefault ? [] : b));

    /// <summary>Labels: written in ordinal key order, compared as a map.</summary>
    public static readonly Codec<ImmutableDictionary<string, string>> TextMap = new(
        v => new JsonObject(v.OrderBy(l => l.Key, StringComparer.Ordinal).Select(l => KeyValuePair.Create(l.Key, (JsonNode?)l.Value))),
        n => n!.AsObject().ToImmutableDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>()),
        (a, b) => a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var v) && v == kv.Value));

    /// <summary>Address ranges as "lo" or "lo-hi".</summary>
    public static readonly Codec<ImmutableArray<AddressRange>> RangeList = new(
        v => new JsonArray([.. (v.IsDefault ? [] : v).Select(r => (JsonNode)r.ToString())]),
        n => [.. n!.AsArray().Select(r => ParseRange(r!.GetValue<string>()))],
        (a, b) => (a.IsDefault ? [] : a).SequenceEqual(b.IsDefault ? [] : b));

    /// <summary>An ordered list of records of one shape.</summary>
    public static Codec<ImmutableArray<T>> List<T>(JournalShape<T> shape) where T : class => new(
        v => new JsonArray([.. (v.IsDefault ? [] : v).Select(x => (JsonNode)shape.Write(x))]),
        n => [.. n!.AsArray().Select(x => shape.Read(x!.AsObject()))],
        (a, b) =>
        {
            var x = a.IsDefault ? [] : a;
            var y = b.IsDefault ? [] : b;
            if (x.Length != y.Length) return false;
            for (var i = 0; i < x.Length; i++)
                if (!shape.Same(x[i], y[i])) return false;
            return true;
        });

    private static IPAddress ParseAddress(string text) =>
        Addresses.TryParse(text, out var a) ? a : throw new FormatException($"\"{text}\" is not an address");

    private static AddressRange ParseRange(string text)
    {
        var parts = text.Split('-');
        if (parts.Length is < 1 or > 2) throw new FormatException($"\"{text}\" is not an address range");
        var (family, lo) = Addresses.ToNumber(ParseAddress(parts[0]));
        var (hiFamily, hi) = parts.Length == 2 ? Addresses.ToNumber(ParseAddress(parts[1])) : (family, lo);
        if (hiFamily != family || hi < lo) throw new FormatException($"\"{text}\" is not an address range");
        return new AddressRange(family, lo, hi);
    }
}
