/**
 * One table per service describes its operations and records. The WSDL is
 * generated from it, and every request is decoded and checked against it, so
 * what we publish and what we accept cannot drift apart.
 */
export type Scalar = 'string' | 'int' | 'long' | 'boolean' | 'dateTime';

export interface Field {
  readonly name: string;
  /** A scalar, or the name of a record in the service's `types`. */
  readonly type: Scalar | { readonly record: string };
  readonly optional?: boolean;
  readonly many?: boolean;
  readonly doc?: string;
}

export interface Operation {
  readonly doc: string;
  readonly input: readonly Field[];
  readonly output: readonly Field[];
}

export interface ServiceDefinition {
  readonly name: string;
  readonly namespace: string;
  readonly path: string;
  readonly doc: string;
  readonly types: Readonly<Record<string, readonly Field[]>>;
  readonly operations: Readonly<Record<string, Operation>>;
}

export const SOAP_ENV = 'http://schemas.xmlsoap.org/soap/envelope/';

// Small constructors keep the service tables readable.
export const str = (name: string, extra: Partial<Field> = {}): Field => ({ name, type: 'string', ...extra });
export const int = (name: string, extra: Partial<Field> = {}): Field => ({ name, type: 'int', ...extra });
export const long = (name: string, extra: Partial<Field> = {}): Field => ({ name, type: 'long', ...extra });
export const bool = (name: string, extra: Partial<Field> = {}): Field => ({ name, type: 'boolean', ...extra });
export const time = (name: string, extra: Partial<Field> = {}): Field => ({ name, type: 'dateTime', ...extra });
export const rec = (name: string, record: string, extra: Partial<Field> = {}): Field => ({
  name,
  type: { record },
  ...extra,
});
