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
        private sealed record ElementCommands(string Verb, string Table, List<Element> Elements, DateTimeOffset? Now);

        private readonly List<object> parts = [first];

        public void Elements(string verb, string table, IEnumerable<Element> elements, DateTimeOffset? now)
        {
            var sorted = elements.ToList();
            sorted.Sort(RenderOrder);
            parts.Add(new ElementCommands(verb, table, sorted, now));
        }

        /// <summary>A fixed order (the same transaction renders alike every time): by the set that
        /// holds the element, then its fields as numbers, then its target. Comparing keys (strings
        /// with long common prefixes) took most of the start-up render's time.</summary>
        private static int RenderOrder(Element a, Element b)
        {
            var c = string.CompareOrdinal(a.PhysicalSet, b.PhysicalSet);
            if (c != 0) return c;
            var (x, y) = (a.PhysicalFields, b.PhysicalFields);
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
            var buffer = new ArrayBufferWriter<byte>(64 * 1024);
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
            // one command per set that holds them (sorted by it: each set is one run)
            for (var start = 0; start < c.Elements.Count;)
            {
                var set = c.Elements[start].PhysicalSet;
                var end = start;
                while (end < c.Elements.Count && c.Elements[end].PhysicalSet == set) end++;
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
                for (var i = start; i < end; i++) WriteElement(w, c.Elements[i], c.Now);
                w.WriteEndArray();
                w.WriteEndObject();
                w.WriteEndObject();
                w.WriteEndObject();
                start = end;
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
                var lo = Addresses.Format(family, field.Lo);
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
                    w.WriteStringValue(Addresses.Format(family, field.Hi));
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
}
