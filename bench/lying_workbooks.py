# Writes shared400.xlsx and repeat10mb.ods into the current folder (see bench/lying.sh).
import zipfile, sys
# (a) xlsx whose shared strings inflate to ~400 MB: 40 strings of 10 MB.
hdr = "branch_id,branch_name,product_id,bin,card_type,quantity,plastic_code,pan_length,pin_generation,delivery_address,pin_code,process_start_time,validity_days,ordered_by".split(",")
n=40; size=10*1024*1024
def col(i):
    s=""; i+=1
    while i: i,r=divmod(i-1,26); s=chr(65+r)+s
    return s
ss_strings = hdr + [("%02d"%k)+"A"*size for k in range(n)]
with zipfile.ZipFile("shared400.xlsx","w",zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.writestr("[Content_Types].xml",'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
    z.writestr("_rels/.rels",'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
    z.writestr("xl/workbook.xml",'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Orders" sheetId="1" r:id="rId1"/></sheets></workbook>')
    z.writestr("xl/_rels/workbook.xml.rels",'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/></Relationships>')
    parts=['<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="%d" uniqueCount="%d">'%(len(ss_strings),len(ss_strings))]
    for s in ss_strings: parts.append("<si><t>%s</t></si>"%s)
    parts.append("</sst>")
    z.writestr("xl/sharedStrings.xml","".join(parts))
    rows=['<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>']
    rows.append('<row r="1">'+"".join('<c r="%s1" t="s"><v>%d</v></c>'%(col(i),i) for i in range(len(hdr)))+'</row>')
    for k in range(n):
        r=k+2
        rows.append('<row r="%d"><c r="B%d" t="s"><v>%d</v></c></row>'%(r,r,len(hdr)+k))
    rows.append('</sheetData></worksheet>')
    z.writestr("xl/worksheets/sheet1.xml","".join(rows))
# (b) ods: one 10 MB cell repeated over 65,536 rows
big="B"*(10*1024*1024)
content='<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Orders">'
content+='<table:table-row>'+"".join('<table:table-cell office:value-type="string"><text:p>%s</text:p></table:table-cell>'%h for h in hdr)+'</table:table-row>'
content+='<table:table-row table:number-rows-repeated="65536"><table:table-cell office:value-type="string"><text:p>1</text:p></table:table-cell><table:table-cell office:value-type="string"><text:p>%s</text:p></table:table-cell></table:table-row>'%big
content+='</table:table></office:spreadsheet></office:body></office:document-content>'
with zipfile.ZipFile("repeat10mb.ods","w",zipfile.ZIP_DEFLATED, compresslevel=9) as z:
    z.writestr(zipfile.ZipInfo("mimetype"),"application/vnd.oasis.opendocument.spreadsheet")
    z.writestr("META-INF/manifest.xml",'<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>')
    z.writestr("content.xml",content)
