/*
 * dashboard_blob.S - the dashboard page, compiled into the binary.
 * The assembler's .incbin takes the file as it is (run from the project
 * root), so the page needs no generator and no network at build time.
 */
    .section .rodata
    .global dashboard_html
    .global dashboard_html_end
dashboard_html:
    .incbin "server/api/dashboard.html"
dashboard_html_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
