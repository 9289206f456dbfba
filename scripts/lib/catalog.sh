# catalog.sh - write_catalog FILE STOCK: a catalog of the demo SKUs (the
# ones scripts/wrk/buy.lua rotates over), each with STOCK units, for the
# benchmark, the profile and the experiment. Source it.
write_catalog() {
    local sku sep=
    {
        printf '{"products": ['
        for sku in apple banana cherry date elderberry fig grape honeydew \
            kiwi lemon mango truffle; do
            printf '%s{"sku":"%s","name":"%s","price_cents":100,"stock":%s}' \
                "$sep" "$sku" "$sku" "$2"
            sep=,
        done
        printf ']}\n'
    } >"$1"
}
