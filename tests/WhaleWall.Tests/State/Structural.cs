using System.Collections;
using System.Collections.Immutable;
using System.Net;
using System.Reflection;

namespace WhaleWall.Tests.State;

/// <summary>Value equality of records by reflection over their positional properties, knowing
/// nothing of the journal's field lists: the round-trip tests check the serializer with it, so
/// a field the schema forgets or reads wrongly cannot hide behind the schema's own comparer.</summary>
public static class Structural
{
    public static bool Equal(object? a, object? b) => Difference(a, b, "") is null;

    /// <summary>The path of the first difference, or null.</summary>
    public static string? Difference(object? a, object? b, string path)
    {
        a = Normalize(a);
        b = Normalize(b);
        if (a is null || b is null) return a is null && b is null ? null : $"{path}: {a ?? "null"} vs {b ?? "null"}";
        if (a is IDictionary da && b is IDictionary db)
        {
            if (da.Count != db.Count) return $"{path}: {da.Count} vs {db.Count} entries";
            foreach (DictionaryEntry e in da)
            {
                if (!db.Contains(e.Key)) return $"{path}[{e.Key}]: missing";
                if (Difference(e.Value, db[e.Key], $"{path}[{e.Key}]") is { } d) return d;
            }
            return null;
        }
        if (a is IEnumerable ea and not string && b is IEnumerable eb and not string)
        {
            var la = ea.Cast<object?>().ToList();
            var lb = eb.Cast<object?>().ToList();
            if (la.Count != lb.Count) return $"{path}: {la.Count} vs {lb.Count} items";
            for (var i = 0; i < la.Count; i++)
                if (Difference(la[i], lb[i], $"{path}[{i}]") is { } d) return d;
            return null;
        }
        if (a.GetType() != b.GetType()) return $"{path}: {a.GetType().Name} vs {b.GetType().Name}";
        if (a is string or IPAddress || a.GetType().IsValueType)
            return a.Equals(b) ? null : $"{path}: {a} vs {b}";
        foreach (var p in PositionalProperties(a.GetType()))
            if (Difference(p.GetValue(a), p.GetValue(b), $"{path}.{p.Name}") is { } d) return d;
        return null;
    }

    /// <summary>The properties a record's primary constructor sets.</summary>
    public static IReadOnlyList<PropertyInfo> PositionalProperties(Type t)
    {
        var ctor = t.GetConstructors().OrderByDescending(c => c.GetParameters().Length).First();
        return [.. ctor.GetParameters().Select(p => t.GetProperty(p.Name!)
            ?? throw new InvalidOperationException($"{t.Name}: no property for constructor parameter {p.Name}"))];
    }

    /// <summary>A default (unset) immutable array counts as empty.</summary>
    private static object? Normalize(object? o)
    {
        if (o is null) return null;
        var t = o.GetType();
        if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(ImmutableArray<>) &&
            (bool)t.GetProperty(nameof(ImmutableArray<int>.IsDefault))!.GetValue(o)!)
            return Array.Empty<object>();
        return o;
    }
}
