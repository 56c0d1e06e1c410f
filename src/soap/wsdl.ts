import { escapeXml } from './xml.js';
import type { Field, ServiceDefinition } from './schema.js';

/** The VbsFault detail: the code, a message safe to show, and the request id the service logged it under. */
const FAULT_FIELDS: readonly Field[] = [
  { name: 'code', type: 'string' },
  { name: 'message', type: 'string' },
  { name: 'requestId', type: 'string', optional: true },
];

/**
 * WSDL 1.1, SOAP 1.1 document/literal, generated from the service table.
 * Every operation declares the common VbsFault so generated clients
 * (zeep, wsimport, ...) expose our fault code and message.
 */
export function generateWsdl(def: ServiceDefinition, location: string): string {
  const ops = Object.entries(def.operations);
  const xsType = (f: Field): string => (typeof f.type === 'object' ? `tns:${f.type.record}` : `xsd:${f.type}`);
  const element = (f: Field, indent: string): string =>
    `${indent}<xsd:element name="${f.name}" type="${xsType(f)}" minOccurs="${f.optional || f.many ? 0 : 1}" maxOccurs="${f.many ? 'unbounded' : 1}"/>`;
  const sequence = (fields: readonly Field[], indent: string): string =>
    fields.length
      ? `${indent}<xsd:sequence>\n${fields.map((f) => element(f, `${indent}  `)).join('\n')}\n${indent}</xsd:sequence>`
      : `${indent}<xsd:sequence/>`;

  const lines: string[] = [];
  lines.push(`<?xml version="1.0" encoding="UTF-8"?>`);
  lines.push(`<!-- ${escapeXml(def.doc)} Generated from src/services/; do not edit by hand. -->`);
  lines.push(
    `<wsdl:definitions name="${def.name}" targetNamespace="${def.namespace}"`,
    `    xmlns:tns="${def.namespace}"`,
    `    xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"`,
    `    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"`,
    `    xmlns:xsd="http://www.w3.org/2001/XMLSchema">`,
  );
  lines.push(`  <wsdl:types>`, `    <xsd:schema targetNamespace="${def.namespace}" elementFormDefault="qualified">`);
  for (const [name, fields] of Object.entries(def.types)) {
    lines.push(`      <xsd:complexType name="${name}">`, sequence(fields, '        '), `      </xsd:complexType>`);
  }
  lines.push(
    `      <xsd:element name="VbsFault">`,
    `        <xsd:complexType>`,
    sequence(FAULT_FIELDS, '          '),
    `        </xsd:complexType>`,
    `      </xsd:element>`,
  );
  for (const [name, op] of ops) {
    for (const [el, fields] of [
      [name, op.input],
      [`${name}Response`, op.output],
    ] as const) {
      lines.push(`      <xsd:element name="${el}">`, `        <xsd:complexType>`, sequence(fields, '          '), `        </xsd:complexType>`, `      </xsd:element>`);
    }
  }
  lines.push(`    </xsd:schema>`, `  </wsdl:types>`);
  lines.push(`  <wsdl:message name="VbsFault"><wsdl:part name="fault" element="tns:VbsFault"/></wsdl:message>`);
  for (const [name] of ops) {
    lines.push(`  <wsdl:message name="${name}Request"><wsdl:part name="parameters" element="tns:${name}"/></wsdl:message>`);
    lines.push(`  <wsdl:message name="${name}Response"><wsdl:part name="parameters" element="tns:${name}Response"/></wsdl:message>`);
  }
  lines.push(`  <wsdl:portType name="${def.name}PortType">`);
  for (const [name, op] of ops) {
    lines.push(
      `    <wsdl:operation name="${name}">`,
      `      <wsdl:documentation>${escapeXml(op.doc)}</wsdl:documentation>`,
      `      <wsdl:input message="tns:${name}Request"/>`,
      `      <wsdl:output message="tns:${name}Response"/>`,
      `      <wsdl:fault name="VbsFault" message="tns:VbsFault"/>`,
      `    </wsdl:operation>`,
    );
  }
  lines.push(`  </wsdl:portType>`);
  lines.push(`  <wsdl:binding name="${def.name}Binding" type="tns:${def.name}PortType">`);
  lines.push(`    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>`);
  for (const [name] of ops) {
    lines.push(
      `    <wsdl:operation name="${name}">`,
      `      <soap:operation soapAction="${def.namespace}/${name}" style="document"/>`,
      `      <wsdl:input><soap:body use="literal"/></wsdl:input>`,
      `      <wsdl:output><soap:body use="literal"/></wsdl:output>`,
      `      <wsdl:fault name="VbsFault"><soap:fault name="VbsFault" use="literal"/></wsdl:fault>`,
      `    </wsdl:operation>`,
    );
  }
  lines.push(`  </wsdl:binding>`);
  lines.push(
    `  <wsdl:service name="${def.name}">`,
    `    <wsdl:documentation>${escapeXml(def.doc)}</wsdl:documentation>`,
    `    <wsdl:port name="${def.name}Port" binding="tns:${def.name}Binding">`,
    `      <soap:address location="${escapeXml(location)}"/>`,
    `    </wsdl:port>`,
    `  </wsdl:service>`,
    `</wsdl:definitions>`,
    '',
  );
  return lines.join('\n');
}
