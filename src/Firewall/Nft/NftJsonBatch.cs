using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Nft;

public static partial class NftJson
{
    /// <summary>One transaction written straight to UTF-8: the constant part (table, sets, chains,
    /// rules: a few hundred commands) as JSON nodes, the elements — up to hundreds of thousands at
    /// start-up — written field by field with no tree in between. Elements are sorted and grouped by
    /// the set that holds them (<see cref="Element.PhysicalSet"/>), one command per set.</summary>
    private sealed class Batch(JsonArray first)
    {
        /// <summary>The elements of one verb, in runs: one per set that holds them (by name), each
        /// sorted (<see cref="FieldOrder"/>).</summary>
        private sealed record ElementCommands(string Verb, string Table, List<(string Set, List<Element> Elements)> Runs, DateTimeOffset? Now);

        private readonly List<object> parts = [first];
        private int elementCount;

        public void Elements(string verb, string table, IEnumerable<Element> elements, DateTimeOffset? now)
        {
            var bySet = new Dictionary<string, List<Element>>(StringComparer.Ordinal);
            foreach (var e in elements)
            {
                if (!bySet.TryGetValue(e.PhysicalSet, out var run)) bySet[e.PhysicalSet] = run = [];
                run.Add(e);
                elementCount++;
            }
            var runs = bySet.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => (p.Key, p.Value)).ToList();
            foreach (var (_, run) in runs) run.Sort(FieldOrder);
            parts.Add(new ElementCommands(verb, table, runs, now));
        }

        /// <summary>A fixed order within a set (the same transaction renders alike every time): the
        /// fields as numbers, then the target. Elements are grouped by set first, so most
        /// comparisons are decided by the first field; comparing keys (strings with long common
        /// prefixes) took most of the start-up render's time.</summary>
        private static int FieldOrder(Element a, Element b)
        {
            var (x, y) = (a.PhysicalFields, b.PhysicalFields);
            int c;
            for (var i = 0; i < Math.Min(x.Length, y.Length); i++)
            {
                if ((c = x[i].Lo.CompareTo(y[i].Lo)) != 0) return c;
                if ((c = x[i].Hi.CompareTo(y[i].Hi)) != 0) return c;
            }
            if ((c = x.Length.CompareTo(y.Length)) != 0) return c;
            return string.CompareOrdinal(a.Target, b.Target);
        }

        public void Then(JsonArray commands) => parts.Add(commands);

        /// <param name="bridge">another table's commands (the bridge table's), last: one transaction for both</param>
        public string Render(JsonArray? bridge, bool indented)
        {
            // sized for the elements up front: growing a multi-megabyte buffer by doubling copied
            // it again and again (~10% of a 60,000-element start-up render)
            var buffer = new ArrayBufferWriter<byte>(64 * 1024 + elementCount * 48);
            using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = indented }))
            {
                w.WriteStartObject();
                w.WritePropertyName("nftables");
                w.WriteStartArray();
                foreach (var part in parts)
                {
                    if (part is JsonArray commands)
                        foreach (var command in commands) command!.WriteTo(w);
                    else Write(w, (ElementCommands)part);
                }
                if (bridge is not null)
                    foreach (var command in bridge) command!.WriteTo(w);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            return Encoding.UTF8.GetString(buffer.WrittenSpan);
        }

        private static void Write(Utf8JsonWriter w, ElementCommands c)
        {
            foreach (var (set, run) in c.Runs)
            {
                w.WriteStartObject();
                w.WritePropertyName(c.Verb);
                w.WriteStartObject();
                w.WritePropertyName("element");
                w.WriteStartObject();
                w.WriteString("family", "inet");
                w.WriteString("table", c.Table);
                w.WriteString("name", set);
                w.WritePropertyName("elem");
                w.WriteStartArray();
                foreach (var e in run) WriteElement(w, e, c.Now);
                w.WriteEndArray();
                w.WriteEndObject();
                w.WriteEndObject();
                w.WriteEndObject();
            }
        }
    }

    /// <summary>An element with an expiry is added with the seconds it has left (at least 1), as
    /// its timeout and as its expiry: an `add` of an element the kernel still holds, with the same
    /// timeout and no expiry, is accepted and changes nothing (kernel 6.18), so a renewal the
    /// writer sends without a delete (too close to the old expiry to delete safely) or an address
    /// learned again before the kernel let it go would die at its old expiry. With the expiry the
    /// kernel restarts the element's clock.</summary>
    private static void WriteElement(Utf8JsonWriter w, Element element, DateTimeOffset? now)
    {
        if (element.Expires is not { } expires || now is not { } at)
        {
            WriteValue(w, element);
            return;
        }
        var seconds = Math.Max(1, (int)Math.Ceiling((expires - at).TotalSeconds));
        w.WriteStartObject();
        w.WritePropertyName("elem");
        w.WriteStartObject();
        w.WritePropertyName("val");
        WriteValue(w, element);
        w.WriteNumber("timeout", seconds);
        w.WriteNumber("expires", seconds);
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static void WriteValue(Utf8JsonWriter w, Element element)
    {
        if (element.Target is not null) w.WriteStartArray();
        var fields = element.PhysicalFields;
        if (fields.Length == 1) WriteField(w, fields[0]);
        else
        {
            w.WriteStartObject();
            w.WritePropertyName("concat");
            w.WriteStartArray();
            foreach (var field in fields) WriteField(w, field);
            w.WriteEndArray();
            w.WriteEndObject();
        }
        if (element.Target is not { } target) return;
        w.WriteStartObject();
        w.WritePropertyName("goto");
        w.WriteStartObject();
        w.WriteString("target", target);
        w.WriteEndObject();
        w.WriteEndObject();
        w.WriteEndArray();
    }

    private static void WriteField(Utf8JsonWriter w, Field field)
    {
        switch (field.Kind)
        {
            case FieldKind.Ipv4:
            case FieldKind.Ipv6:
                var family = field.Kind == FieldKind.Ipv4 ? IpFamily.V4 : IpFamily.V6;
                Span<byte> lo = stackalloc byte[MaxAddressLength];
                lo = lo[..FormatAddress(family, field.Lo, lo)];
                if (field.Lo == field.Hi)
                {
                    w.WriteStringValue(lo);
                    return;
                }
                w.WriteStartObject();
                if (PrefixLength(family, field) is { } len)
                {
                    w.WritePropertyName("prefix");
                    w.WriteStartObject();
                    w.WriteString("addr", lo);
                    w.WriteNumber("len", len);
                    w.WriteEndObject();
                }
                else
                {
                    w.WritePropertyName("range");
                    w.WriteStartArray();
                    w.WriteStringValue(lo);
                    Span<byte> hi = stackalloc byte[MaxAddressLength];
                    w.WriteStringValue(hi[..FormatAddress(family, field.Hi, hi)]);
                    w.WriteEndArray();
                }
                w.WriteEndObject();
                return;
            case FieldKind.Mark:
                w.WriteNumberValue((uint)field.Lo);
                return;
            default:
                if (field.Lo == field.Hi)
                {
                    w.WriteNumberValue((int)field.Lo);
                    return;
                }
                w.WriteStartObject();
                w.WritePropertyName("range");
                w.WriteStartArray();
                w.WriteNumberValue((int)field.Lo);
                w.WriteNumberValue((int)field.Hi);
                w.WriteEndArray();
                w.WriteEndObject();
                return;
        }
    }

    /// <summary>Room for the longest address text (IPv6 with an IPv4 tail: 45 characters).</summary>
    private const int MaxAddressLength = 64;

    /// <summary>An address as UTF-8 text, as <see cref="Addresses.Format"/> spells it, without a
    /// string in between (an IPv4 address, the common case, without an IPAddress either).</summary>
    internal static int FormatAddress(IpFamily family, UInt128 value, Span<byte> destination)
    {
        if (family == IpFamily.V6)
            return Addresses.ToAddress(family, value).TryFormat(destination, out var written)
                ? written
                : throw new ArgumentException("address text longer than the buffer", nameof(destination));
        var v = (uint)value;
        var n = 0;
        for (var shift = 24; shift >= 0; shift -= 8)
        {
            ((byte)(v >> shift)).TryFormat(destination[n..], out var octet, default, System.Globalization.CultureInfo.InvariantCulture);
            n += octet;
            if (shift > 0) destination[n++] = (byte)'.';
        }
        return n;
    }
}
